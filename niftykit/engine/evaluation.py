"""The evaluation driver: inferred outputs (``inferred.csv``) against references.

The application writes its per-subject CSV (``<save_csv_dir>/evaluation.csv``);
this prints a summary table on the terminal. When the table holds one score per
subject and unit (segmentation: per label, foreground or connected component;
voxel-wise regression: per subject) each metric is summarised over subjects by
n, mean, sample standard deviation and median, NaN scores left out (``inf``,
a distance to a missing structure, is kept: the mean is then ``inf``). Scores
that are not per subject (classification accuracy, ROC AUC; per-image
regression errors) are shown as the application computed them, over all subjects.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from niftykit.engine.inference import INFERRED_CSV
from niftykit.errors import DataError
from niftykit.io import read_file_list

__all__ = ["evaluate", "run_evaluation", "summarise_evaluation", "statistics",
           "EvaluationSummary", "STATISTICS"]

log = logging.getLogger("niftykit")

#: the statistics of a per-subject metric, in table order
STATISTICS = ("n", "mean", "sd", "median")
#: CSV unit columns of the segmentation evaluator, and the row label used for components
_UNIT_COLUMNS = ("label", "foreground", "component")


@dataclass
class EvaluationSummary:
    """What ``niftykit evaluate`` wrote and its summary.

    Attributes:
        csv: the per-subject table the application wrote.
        unit: what a summary row is (``label``, ``foreground``, ``component``, ``subject``,
            or the application's unit name).
        stats: unit value -> metric -> ``{"n", "mean", "sd", "median"}`` for per-subject
            scores; for scores over all subjects (classification, per-image regression)
            ``{"n", "value"}`` (n: the subjects).
        subjects: number of subjects evaluated.
    """

    csv: Path
    unit: str
    stats: Dict[Any, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    subjects: int = 0

    def table(self) -> str:
        """The summary as text: an aligned table, one row per unit and metric, of n, mean,
        sd and median; for scores over all subjects, one line per unit."""
        if not any("mean" in s for m in self.stats.values() for s in m.values()):
            return "\n".join(
                f"  {unit} ({self.subjects} subjects): " + ", ".join(
                    f"mean {metric} {_number(values.get('value'), 'value')}"
                    for metric, values in metrics.items())
                for unit, metrics in self.stats.items())
        rows = [[self.unit, "metric", *STATISTICS]]
        for unit, metrics in self.stats.items():
            for metric, values in metrics.items():
                rows.append([str(unit), metric, *(_number(values.get(c), c) for c in STATISTICS)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                 for row in rows]
        return "\n".join(lines)


def _number(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if column == "n":
        return str(int(value))
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e6 else f"{value:.3e}"


def statistics(values: Sequence[float]) -> Dict[str, float]:
    """n, mean, sample sd (NaN for one value) and median of ``values``, NaN left out."""
    kept = np.array([v for v in values if not math.isnan(v)], np.float64)
    if kept.size == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "median": math.nan}
    with np.errstate(invalid="ignore"):
        sd = float(np.std(kept, ddof=1)) if kept.size > 1 else math.nan
    return {"n": int(kept.size), "mean": float(np.mean(kept)), "sd": sd,
            "median": float(np.median(kept))}


def _float(text: str) -> Optional[float]:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _per_subject(path: Path, metrics: Sequence[str]) -> Optional[tuple]:
    """``(unit name, unit -> metric -> scores)`` from the application's CSV when it holds
    one numeric score per subject (and unit) for every metric; None otherwise."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows: List[Dict[str, str]] = list(csv.DictReader(handle))
    except OSError:
        return None
    if not rows or not metrics or any(m not in rows[0] for m in metrics):
        return None
    column = next((c for c in _UNIT_COLUMNS if c in rows[0]), None)
    scores: Dict[Any, Dict[str, List[float]]] = {}
    for row in rows:
        unit = "all" if column in (None, "component") else _key(row[column])
        for metric in metrics:
            value = _float(row[metric])
            if value is None:
                return None
            scores.setdefault(unit, {}).setdefault(metric, []).append(value)
    return (column or "subjects"), scores


def summarise_evaluation(csv_path: Path, summary: Mapping[Any, Mapping[str, Any]],
                         unit: str, subjects: int) -> EvaluationSummary:
    """The summary of an application's evaluation (see the module docstring).

    Args:
        csv_path: the per-subject CSV the application wrote.
        summary: what ``app.evaluate`` returned: unit -> metric -> value.
        unit: the name of the summary's units (e.g. ``label``).
        subjects: subjects evaluated.
    """
    metrics = list(dict.fromkeys(m for values in summary.values() for m in values))
    found = _per_subject(Path(csv_path), metrics)
    if found is not None:
        name, scores = found
        stats = {key: {m: statistics(v) for m, v in per_metric.items()}
                 for key, per_metric in scores.items()}
        return EvaluationSummary(Path(csv_path), name, stats, subjects)
    stats = {key: {m: {"n": subjects, "value": _scalar(v)} for m, v in values.items()}
             for key, values in summary.items()}
    return EvaluationSummary(Path(csv_path), unit, stats, subjects)


def _key(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _scalar(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_evaluation(app: Any, *, overwrite: bool = False) -> EvaluationSummary:
    """Evaluate the outputs listed in ``<save_seg_dir>/inferred.csv`` and print the
    summary table; returns the summary (its ``csv`` is the file written).

    Raises:
        DataError: no ``inferred.csv`` (run ``niftykit infer`` first), or the
            application's errors (no references, an existing CSV without ``overwrite``).
    """
    index = Path(app.config.inference.save_seg_dir) / INFERRED_CSV
    if not index.exists():
        raise DataError(f"{index} not found; run `niftykit infer` first")
    inferred = read_file_list(index, source="inferred")
    out, summary = app.evaluate(inferred, overwrite=overwrite)
    unit = str(getattr(app.task, "evaluation_units", "unit"))
    result = summarise_evaluation(Path(out), summary, unit, len(inferred))
    log.info("evaluated %d subjects -> %s\n%s", len(inferred), out, result.table())
    return result


def evaluate(app: Any, *, overwrite: bool = False) -> Path:
    """Evaluate the outputs listed in ``<save_seg_dir>/inferred.csv``; returns the CSV
    written. The summary table goes to the log (:func:`run_evaluation`)."""
    return run_evaluation(app, overwrite=overwrite).csv
