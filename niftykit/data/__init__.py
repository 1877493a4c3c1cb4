"""Generated data sets for demos and tests (no downloads).

The generators load on first use, so ``import niftykit.data.phantom_options`` (the CLI's
options) imports no numpy.
"""

import importlib

__all__ = ["make_shapes", "make_abdominal_phantoms", "phantoms_main", "separability_report",
           "make_nodules", "make_weak_lesions", "make_radiographs"]

_WHERE = {"make_shapes": "niftykit.data.shapes", "make_abdominal_phantoms": "niftykit.data.abdomen",
          "phantoms_main": "niftykit.data.abdomen", "separability_report": "niftykit.data.abdomen",
          "make_nodules": "niftykit.data.nodules", "make_weak_lesions": "niftykit.data.weak",
          "make_radiographs": "niftykit.data.radiographs"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'niftykit.data' has no attribute {name!r}")
