"""The evaluation driver: inferred outputs (``inferred.csv``) against references."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from niftykit.engine.inference import INFERRED_CSV
from niftykit.errors import DataError
from niftykit.io import read_file_list

__all__ = ["evaluate"]

log = logging.getLogger("niftykit")


def evaluate(app: Any, *, overwrite: bool = False) -> Path:
    """Evaluate the outputs listed in ``<save_seg_dir>/inferred.csv``; returns the CSV written."""
    index = Path(app.config.inference.save_seg_dir) / INFERRED_CSV
    if not index.exists():
        raise DataError(f"{index} not found; run `niftykit infer` first")
    inferred = read_file_list(index, source="inferred")
    out, summary = app.evaluate(inferred, overwrite=overwrite)
    log.info("evaluated %d subjects -> %s", len(inferred), out)
    unit = app.task.evaluation_units if hasattr(app.task, "evaluation_units") else "label"
    for key, values in summary.items():
        shown = ", ".join(f"mean {metric} {_number(value)}" for metric, value in values.items())
        log.info("  %s %s: %s", unit, key, shown)
    return out


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"
