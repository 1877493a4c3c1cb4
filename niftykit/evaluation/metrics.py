"""Segmentation overlap metrics on boolean masks and label volumes (numpy only).

Every metric compares a segmentation mask ``S`` with a reference mask ``R``
through the voxel counts ``tp = |S ∩ R|``, ``fp = |S \\ R|``, ``fn = |R \\ S|``
and ``tn`` (voxels in neither). Counts need no spacing.

Empty-mask convention (shared with :mod:`niftykit.evaluation.surface`): when
both masks are empty the structure is absent and every metric is NaN, so that
means over subjects skip it (as nnU-Net reports NaN Dice for a label absent
from both). Otherwise a ratio whose denominator is zero is NaN (sensitivity
with an empty reference, precision with an empty segmentation), except
:func:`vol_diff`, which is ``+inf`` for a non-empty segmentation of an empty
reference. The counts themselves are always reported.
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Sequence

import numpy as np

__all__ = [
    "Counts",
    "confusion_counts",
    "overlap_metrics",
    "dice",
    "jaccard",
    "sensitivity",
    "specificity",
    "precision",
    "accuracy",
    "vol_diff",
    "dice_per_label",
]


class Counts(NamedTuple):
    """Voxel counts of a segmentation against a reference."""

    tp: int
    fp: int
    fn: int
    tn: int


def _masks(seg: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg, ref = np.asarray(seg, dtype=bool), np.asarray(ref, dtype=bool)
    if seg.shape != ref.shape:
        raise ValueError(f"segmentation shape {seg.shape} differs from reference shape {ref.shape}")
    return seg, ref


def confusion_counts(seg: np.ndarray, ref: np.ndarray) -> Counts:
    """True/false positives and negatives of ``seg`` against ``ref``.

    Args:
        seg: segmentation mask (non-zero = inside), any shape, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        The :class:`Counts` ``(tp, fp, fn, tn)`` in voxels.

    Raises:
        ValueError: the shapes differ.
    """
    seg, ref = _masks(seg, ref)
    n_seg, n_ref = int(np.count_nonzero(seg)), int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(seg & ref))
    return Counts(tp=tp, fp=n_seg - tp, fn=n_ref - tp, tn=seg.size - n_seg - n_ref + tp)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _vol_diff(c: Counts) -> float:
    n_seg, n_ref = c.tp + c.fp, c.tp + c.fn
    return (n_seg - n_ref) / n_ref if n_ref else float("inf")


#: Metric name -> formula on counts (applied only when a mask is non-empty).
_FORMULAS: Dict[str, Callable[[Counts], float]] = {
    "dice": lambda c: _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    "jaccard": lambda c: _ratio(c.tp, c.tp + c.fp + c.fn),
    "sensitivity": lambda c: _ratio(c.tp, c.tp + c.fn),
    "specificity": lambda c: _ratio(c.tn, c.tn + c.fp),
    "precision": lambda c: _ratio(c.tp, c.tp + c.fp),
    "accuracy": lambda c: _ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn),
    "vol_diff": _vol_diff,
}


def overlap_metrics(counts: Counts) -> dict[str, float]:
    """All overlap metrics from the counts of one structure.

    Args:
        counts: from :func:`confusion_counts`.

    Returns:
        ``{"dice", "jaccard", "sensitivity", "specificity", "precision",
        "accuracy", "vol_diff"}`` -> value; all NaN when both masks are empty
        (``tp + fp + fn == 0``).
    """
    if counts.tp + counts.fp + counts.fn == 0:
        return {name: float("nan") for name in _FORMULAS}
    return {name: float(formula(counts)) for name, formula in _FORMULAS.items()}


def _metric(name: str, seg: np.ndarray, ref: np.ndarray) -> float:
    return overlap_metrics(confusion_counts(seg, ref))[name]


def dice(seg: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient ``2 tp / (2 tp + fp + fn)`` in [0, 1] (Dice, Ecology 1945).

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Dice; 0 when exactly one mask is empty, NaN when both are.
    """
    return _metric("dice", seg, ref)


def jaccard(seg: np.ndarray, ref: np.ndarray) -> float:
    """Jaccard index (intersection over union) ``tp / (tp + fp + fn)`` (Jaccard, 1912).

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Jaccard in [0, 1]; 0 when exactly one mask is empty, NaN when both are.
    """
    return _metric("jaccard", seg, ref)


def sensitivity(seg: np.ndarray, ref: np.ndarray) -> float:
    """Sensitivity (recall, true positive rate) ``tp / (tp + fn)``.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Sensitivity in [0, 1]; NaN when the reference is empty.
    """
    return _metric("sensitivity", seg, ref)


def specificity(seg: np.ndarray, ref: np.ndarray) -> float:
    """Specificity (true negative rate) ``tn / (tn + fp)``.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Specificity in [0, 1]; NaN when both masks are empty or the reference
        fills the volume.
    """
    return _metric("specificity", seg, ref)


def precision(seg: np.ndarray, ref: np.ndarray) -> float:
    """Precision (positive predictive value) ``tp / (tp + fp)``.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Precision in [0, 1]; NaN when the segmentation is empty.
    """
    return _metric("precision", seg, ref)


def accuracy(seg: np.ndarray, ref: np.ndarray) -> float:
    """Voxel accuracy ``(tp + tn) / (tp + fp + fn + tn)``.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        Accuracy in [0, 1]; NaN when both masks are empty.
    """
    return _metric("accuracy", seg, ref)


def vol_diff(seg: np.ndarray, ref: np.ndarray) -> float:
    """Signed relative volume difference ``(|S| - |R|) / |R|``.

    Positive for over-segmentation, negative for under-segmentation, -1 for
    an empty segmentation. (NiftyNet's ``vol_diff`` returned the ratio
    ``|S| / |R|``, i.e. this value plus one.)

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.

    Returns:
        The difference; ``+inf`` when only the reference is empty, NaN when
        both masks are.
    """
    return _metric("vol_diff", seg, ref)


def dice_per_label(seg: np.ndarray, ref: np.ndarray, labels: Sequence[int]) -> dict[int, float]:
    """Dice similarity coefficient per label.

    ``Dice = 2 |S ∩ R| / (|S| + |R|)`` for the voxel sets ``S`` (segmentation)
    and ``R`` (reference) of each label (Dice, Ecology 1945). Counts voxels,
    so it needs no spacing.

    Args:
        seg: integer label volume, e.g. ``(x, y, z)`` or ``(x, y, z, 1)``.
        ref: integer label volume of the same shape.
        labels: label values to score.

    Returns:
        Label -> Dice in [0, 1]; NaN when the label is in neither volume
        (undefined rather than a perfect 1, so that means can skip it).

    Raises:
        ValueError: the shapes differ.
    """
    seg, ref = np.asarray(seg), np.asarray(ref)
    if seg.shape != ref.shape:
        raise ValueError(f"segmentation shape {seg.shape} differs from reference shape {ref.shape}")
    return {int(label): dice(seg == label, ref == label) for label in labels}
