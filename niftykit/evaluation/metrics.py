"""Segmentation overlap metrics on label volumes (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["dice_per_label"]


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
    scores: dict[int, float] = {}
    for label in labels:
        in_seg, in_ref = seg == label, ref == label
        total = int(np.count_nonzero(in_seg)) + int(np.count_nonzero(in_ref))
        overlap = int(np.count_nonzero(in_seg & in_ref))
        scores[int(label)] = 2.0 * overlap / total if total else float("nan")
    return scores
