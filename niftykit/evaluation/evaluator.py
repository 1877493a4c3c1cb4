"""Scoring segmentation files against references and writing the table as CSV.

Evaluation units (NiftyNet's ``evaluation_units``):

* ``label``: one row per requested label value ``l`` (masks ``seg == l``,
  ``ref == l``); the unit column is ``label``.
* ``foreground``: one row per subject for all non-zero voxels as one structure
  (``labels`` is not used); the unit column is ``foreground`` with value 1.
* ``cc``: connected components (full connectivity: 26 neighbours in 3-D) of
  the non-zero voxels of the reference and of the segmentation. Each reference
  component ``k`` is matched to the union of the segmentation components that
  overlap it by at least one voxel (NiftyNet's ``union_of_seg_for_each_ref_cc``);
  its row has the id ``r<k>_s<i>&<j>`` (``r<k>_s0`` when no segmentation
  component touches it, a missed structure). Each segmentation component
  touching no reference component becomes a false-positive row ``r0_s<i>``
  with an empty reference. Components are numbered in raster (C) order of the
  ``(x, y, z)`` array. The unit column is ``component``; ``labels`` is not used.

Metric names are NiftyNet's, case-insensitive; see :data:`METRICS` and
:data:`ALIASES`. Distances are in mm from the reference file's voxel spacing.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from scipy import ndimage

from niftykit.errors import DataError, ImageError
from niftykit.evaluation.metrics import confusion_counts, overlap_metrics
from niftykit.evaluation.surface import SURFACE_METRICS, surface_metrics
from niftykit.io import Image, check_same_grid, read_image, write_csv
from niftykit.typing import PathLike

__all__ = ["METRICS", "ALIASES", "UNITS", "resolve_metrics", "evaluate_segmentations",
           "summarise", "summarise_metrics"]

OVERLAP_METRICS = ("dice", "jaccard", "sensitivity", "specificity", "precision", "accuracy", "vol_diff")
COUNT_METRICS = ("tp", "fp", "fn", "tn")
#: Canonical metric names, which are also the CSV column names.
METRICS = OVERLAP_METRICS + COUNT_METRICS + SURFACE_METRICS
#: Other accepted names (NiftyNet's) -> canonical name; matching ignores case.
ALIASES = {
    "intersection_over_union": "jaccard",
    "positive_predictive_values": "precision",
    "hausdorff_distance": "hausdorff",
    "hausdorff95_distance": "hausdorff95",
    "nsd": "surface_dice",
}
#: Evaluation unit -> its CSV column.
UNITS = {"label": "label", "foreground": "foreground", "cc": "component"}

Unit = tuple[object, np.ndarray, np.ndarray, int]


def resolve_metrics(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical metric names for user-given names (``Dice`` -> ``dice``), duplicates dropped.

    Args:
        names: metric names or aliases, any case (a single string is one name).

    Returns:
        Canonical names (:data:`METRICS`) in the order given.

    Raises:
        ValueError: no name, or an unknown name (with the closest match and the valid names).
    """
    table = {name: name for name in METRICS} | ALIASES
    resolved: list[str] = []
    for name in ([names] if isinstance(names, str) else names):
        key = str(name).lower()
        if key not in table:
            close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.0)
            raise ValueError(f"unknown evaluation metric '{name}'; did you mean '{close[0]}'? "
                             f"(valid: {', '.join(METRICS + tuple(ALIASES))})")
        if table[key] not in resolved:
            resolved.append(table[key])
    if not resolved:
        raise ValueError(f"no evaluation metric given (valid: {', '.join(METRICS)})")
    return tuple(resolved)


def _components(mask: np.ndarray) -> tuple[np.ndarray, list]:
    labelled, _ = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    return labelled, ndimage.find_objects(labelled)


def _joint_box(boxes: Sequence[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                 for a in range(len(boxes[0])))


def _component_units(seg: np.ndarray, ref: np.ndarray) -> Iterator[Unit]:
    """Matched component sets, each cropped to its bounding box (see the module docstring)."""
    seg_cc, seg_boxes = _components(seg != 0)
    ref_cc, ref_boxes = _components(ref != 0)
    both = (seg_cc > 0) & (ref_cc > 0)
    matches: dict[int, list[int]] = {}
    for k, i in np.unique(np.stack([ref_cc[both], seg_cc[both]], axis=1), axis=0).tolist():
        matches.setdefault(k, []).append(i)
    for k in range(1, len(ref_boxes) + 1):
        ids = matches.get(k, [])
        box = _joint_box([ref_boxes[k - 1]] + [seg_boxes[i - 1] for i in ids])
        name = f"r{k}_s{'&'.join(map(str, ids)) or 0}"
        yield name, np.isin(seg_cc[box], ids), ref_cc[box] == k, seg.size - seg_cc[box].size
    matched = {i for ids in matches.values() for i in ids}
    for i in range(1, len(seg_boxes) + 1):
        if i not in matched:
            crop = seg_cc[seg_boxes[i - 1]]
            yield f"r0_s{i}", crop == i, np.zeros(crop.shape, bool), seg.size - crop.size


def _units(seg: np.ndarray, ref: np.ndarray, labels: Sequence[int], units: str) -> Iterator[Unit]:
    """``(unit value, seg mask, ref mask, voxels outside the masks' crop)`` per unit."""
    if units == "label":
        for label in labels:
            yield int(label), seg == label, ref == label, 0
    elif units == "foreground":
        yield 1, seg != 0, ref != 0, 0
    else:
        yield from _component_units(seg, ref)


def _score(seg: np.ndarray, ref: np.ndarray, outside: int, metrics: Sequence[str],
           spacing: np.ndarray, tolerance_mm: float) -> dict:
    counts = confusion_counts(seg, ref)
    counts = counts._replace(tn=counts.tn + outside)
    values: dict = {**counts._asdict(), **overlap_metrics(counts)}
    if any(name in SURFACE_METRICS for name in metrics):
        values.update(surface_metrics(seg, ref, spacing, tolerance_mm))
    return {name: values[name] for name in metrics}


def _read_pair(seg_path: PathLike, ref_path: PathLike) -> tuple[Image, Image]:
    seg, ref = read_image(seg_path, kind="label"), read_image(ref_path, kind="label")
    check_same_grid(seg, ref)
    for image in (seg, ref):
        if image.num_channels != 1:
            raise ImageError(f"{image.path}: a label map must have one channel, "
                             f"got {image.num_channels} (shape {image.array.shape})")
    return seg, ref


def _format(value: object) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6f}"


def evaluate_segmentations(
    pairs: Sequence[tuple[str, PathLike, PathLike]],
    labels: Sequence[int],
    out_csv: PathLike,
    *,
    overwrite: bool = True,
    metrics: Sequence[str] = ("dice",),
    units: str = "label",
    tolerance_mm: float = 1.0,
) -> list[dict]:
    """Score segmentations against references per subject and unit, written to a CSV.

    The CSV (written atomically) has the header ``subject_id,<unit
    column>,<metric...>`` (unit column ``label``, ``foreground`` or
    ``component``, metrics by canonical name in the order asked) and one row
    per subject and unit; floats with 6 decimals, ``nan`` and ``inf`` spelled
    so, counts as integers. The default writes ``subject_id,label,dice``.

    Args:
        pairs: ``(subject_id, segmentation file, reference file)`` triples.
        labels: label values to score (``label`` units only).
        out_csv: destination table.
        overwrite: replace an existing table.
        metrics: metric names (:data:`METRICS`, :data:`ALIASES`).
        units: ``"label"``, ``"foreground"`` or ``"cc"`` (see the module docstring).
        tolerance_mm: surface Dice tolerance τ in mm.

    Returns:
        The rows as dicts ``{"subject_id": str, <unit column>: int | str,
        <metric>: float | int}``.

    Raises:
        ValueError: an unknown metric or unit, or a negative tolerance.
        ImageError: a file cannot be read, holds non-integral labels or several
            channels, or a segmentation and its reference are not on the same grid.
        DataError: ``out_csv`` exists and ``overwrite`` is False.
    """
    names = resolve_metrics(metrics)
    if units not in UNITS:
        raise ValueError(f"unknown evaluation units '{units}' (valid: {', '.join(UNITS)})")
    if tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be >= 0 mm, got {tolerance_mm}")
    if not overwrite and Path(out_csv).exists():  # fail before the slow part
        raise DataError(f"{out_csv} exists; delete it, choose another path, or pass overwrite / --overwrite")
    column, rows = UNITS[units], []
    for subject, seg_path, ref_path in pairs:
        seg, ref = _read_pair(seg_path, ref_path)
        for unit, seg_mask, ref_mask, outside in _units(seg.array[..., 0], ref.array[..., 0], labels, units):
            scores = _score(seg_mask, ref_mask, outside, names, ref.spacing, tolerance_mm)
            rows.append({"subject_id": subject, column: unit, **scores})
    table = ((row["subject_id"], row[column], *(_format(row[n]) for n in names)) for row in rows)
    write_csv(Path(out_csv), table, header=("subject_id", column, *names), overwrite=overwrite)
    return rows


def _group(row: Mapping) -> tuple[object, dict]:
    """The summary key of a row (its label, 1 for foreground, ``"cc"`` for components) and its metrics."""
    for units, column in UNITS.items():
        if column in row:
            key = "cc" if units == "cc" else int(row[column])
            return key, {k: v for k, v in row.items() if k not in ("subject_id", column)}
    raise ValueError(f"row has none of the unit columns {', '.join(UNITS.values())}: {dict(row)}")


def _nanmean(values: Sequence[float]) -> float:
    kept = [float(v) for v in values if not math.isnan(float(v))]
    return sum(kept) / len(kept) if kept else float("nan")


def summarise_metrics(rows: Sequence[Mapping]) -> dict[object, dict[str, float]]:
    """Mean of every metric per unit over subjects, ignoring NaN.

    ``inf`` (a distance to a missing structure) is kept, so such a mean is ``inf``.

    Args:
        rows: rows from :func:`evaluate_segmentations`.

    Returns:
        Unit -> metric -> mean, units in order of first appearance: the label
        value, 1 for ``foreground`` units, ``"cc"`` for all components together.
        NaN for a metric with no non-NaN value.
    """
    values: dict[object, dict[str, list[float]]] = {}
    for row in rows:
        key, scores = _group(row)
        for name, value in scores.items():
            values.setdefault(key, {}).setdefault(name, []).append(value)
    return {key: {name: _nanmean(v) for name, v in per_metric.items()} for key, per_metric in values.items()}


def summarise(rows: Sequence[Mapping], metric: str = "dice") -> dict[object, float]:
    """Mean of one metric (Dice by default) per unit over subjects, ignoring NaN.

    Args:
        rows: rows from :func:`evaluate_segmentations`.
        metric: the metric to average (a name or alias).

    Returns:
        Unit (label value for ``label`` units) -> mean, as :func:`summarise_metrics`.

    Raises:
        ValueError: the metric is unknown or not in the rows.
    """
    (name,) = resolve_metrics([metric])
    summary = summarise_metrics(rows)
    if any(name not in per_metric for per_metric in summary.values()):
        raise ValueError(f"metric '{name}' was not evaluated; the rows hold "
                         f"{', '.join(next(iter(summary.values()), {}))}")
    return {key: per_metric[name] for key, per_metric in summary.items()}
