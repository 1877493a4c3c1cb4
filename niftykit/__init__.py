"""niftykit: deep learning for medical image analysis on TensorFlow 2 / Keras 3.

The package is layered (see README): ``io`` reads and writes images,
``sampler`` cuts windows and stitches outputs, ``network``/``loss``/``evaluation``
hold the mathematics, ``application`` defines tasks and ``engine`` runs them.
Importing ``niftykit`` does not import TensorFlow.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "api"]


def __getattr__(name: str):
    """``niftykit.api`` on first use (it imports no TensorFlow either)."""
    if name == "api":
        import importlib
        return importlib.import_module("niftykit.api")
    raise AttributeError(f"module 'niftykit' has no attribute {name!r}")
