"""Generalised Dice losses: class-weighted (``GDSC``) and Wasserstein (``WGDL``).

Arguments as in :mod:`niftykit.loss.segmentation`: ``logits`` ``(batch, x, y, z,
num_classes)`` (any float dtype, computed in float32), integer ``labels``
``(batch, x, y, z, 1)``, optional voxel ``weights`` ``(batch, x, y, z, 1)``. Both
losses are computed per batch element and averaged over the batch.

References:
    Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
    unbalanced segmentations", DLMIA 2017 (arXiv:1707.03237).
    Fidon et al., "Generalised Wasserstein Dice score for imbalanced multi-class
    segmentation using holistic convolutional networks", BrainLes 2017 (arXiv:1707.00478).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from keras import ops

from niftykit.loss.segmentation import _EPSILON, _inputs, _safe_divide, _spatial_axes

__all__ = ["generalised_dice", "generalised_dice_simple", "generalised_dice_uniform",
           "generalised_wasserstein_dice"]

_TYPE_WEIGHTS = ("Square", "Simple", "Uniform")


def _class_weights(ref_volume: Any, type_weight: str) -> Any:
    """Sudre's class weights from the reference volumes ``(batch, classes)``.

    A class absent from the reference would weigh ∞; as in NiftyNet it takes the
    largest weight of the present classes instead.
    """
    if type_weight not in _TYPE_WEIGHTS:
        raise ValueError(f"GDSC type_weight '{type_weight}' is not one of "
                         f"{', '.join(_TYPE_WEIGHTS)}")
    present = ref_volume > 0
    volume = ops.where(present, ref_volume, 1.0)
    if type_weight == "Square":
        weights = 1.0 / ops.square(volume)
    elif type_weight == "Simple":
        weights = 1.0 / volume
    else:
        weights = ops.ones_like(volume)
    weights = ops.where(present, weights, 0.0)
    return ops.where(present, weights, ops.max(weights, axis=-1, keepdims=True))


def generalised_dice(logits: Any, labels: Any, weights: Optional[Any] = None,
                     type_weight: str = "Square") -> Any:
    """NiftyNet ``GDSC``: generalised Dice loss (Sudre et al. 2017), per batch element.

    With reference volumes ``r_c = Σ_i w_i g_ic``, predicted volumes ``s_c = Σ_i w_i p_ic``
    and class weights ``W_c = 1/r_c²`` (``Square``), ``1/r_c`` (``Simple``) or 1
    (``Uniform``)::

        GDL = 1 − 2 Σ_c W_c Σ_i w_i g_ic p_ic / Σ_c W_c max(s_c + r_c, 1)

    NiftyNet's guards are kept: an absent class takes the largest present weight, the
    denominator terms are floored at 1, and 0/0 (no weighted voxel at all) scores 0.

    Args:
        logits: ``(batch, x, y, z, num_classes)``.
        labels: ``(batch, x, y, z, 1)`` integer classes.
        weights: optional ``(batch, x, y, z, 1)`` voxel weights.
        type_weight: ``"Square"``, ``"Simple"`` or ``"Uniform"``.

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: unknown ``type_weight``.
    """
    probs, target, voxel_weights = _inputs(logits, labels, weights)
    axes = _spatial_axes(probs)
    ref_volume = ops.sum(voxel_weights * target, axes)
    seg_volume = ops.sum(voxel_weights * probs, axes)
    overlap = ops.sum(voxel_weights * target * probs, axes)
    class_weights = _class_weights(ref_volume, type_weight)
    numerator = 2.0 * ops.sum(class_weights * overlap, axis=-1)
    denominator = ops.sum(class_weights * ops.maximum(seg_volume + ref_volume, 1.0), axis=-1)
    return 1.0 - ops.mean(_safe_divide(numerator, denominator, empty=1.0))


def generalised_dice_simple(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """``GDSC_Simple``: :func:`generalised_dice` with class weights ``1/r_c``."""
    return generalised_dice(logits, labels, weights, type_weight="Simple")


def generalised_dice_uniform(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """``GDSC_Uniform``: :func:`generalised_dice` with equal class weights."""
    return generalised_dice(logits, labels, weights, type_weight="Uniform")


def _distance_matrix(distance_matrix: Optional[Any], num_classes: int) -> np.ndarray:
    if distance_matrix is None:
        return 1.0 - np.eye(num_classes, dtype="float32")
    matrix = np.asarray(distance_matrix, dtype="float32")
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"WGDL distance_matrix has shape {matrix.shape}; expected "
                         f"({num_classes}, {num_classes}) for {num_classes} classes")
    return matrix


def generalised_wasserstein_dice(logits: Any, labels: Any, weights: Optional[Any] = None,
                                 distance_matrix: Optional[Any] = None) -> Any:
    """NiftyNet ``WGDL``: generalised Wasserstein Dice loss (Fidon et al. 2017).

    With a ground distance ``M`` between classes (``M[predicted, true]``, class 0 the
    background) the voxel-wise Wasserstein distance to a one-hot label is
    ``δ_i = Σ_l p_il M[l, g_i]``, and per batch element::

        TP   = Σ_i w_i M[0, g_i] (1 − δ_i)
        WGDL = 1 − (2 TP + ε) / (2 TP + Σ_i w_i δ_i + ε)

    as NiftyNet computes it (class weights ``α_l = M[0, l]``: background voxels add no
    true positive). ε = 1e-5 (not in NiftyNet) makes an all-background window
    predicted perfectly score 0 instead of 0/0.
    NiftyNet hard-coded a 5-class BraTS tree matrix; here the default is the 0/1
    matrix (0 on the diagonal, 1 elsewhere), under which ``δ_i = 1 − p_i,g_i``.

    Args:
        logits: ``(batch, x, y, z, num_classes)``.
        labels: ``(batch, x, y, z, 1)`` integer classes.
        weights: optional ``(batch, x, y, z, 1)`` voxel weights (NiftyNet ignored them).
        distance_matrix: ``(num_classes, num_classes)`` ground distances, zero diagonal;
            ``None`` for the 0/1 matrix.

    Returns:
        Scalar float32 loss.

    Raises:
        ValueError: ``distance_matrix`` is not ``(num_classes, num_classes)``.
    """
    probs, target, voxel_weights = _inputs(logits, labels, weights)
    matrix = _distance_matrix(distance_matrix, int(probs.shape[-1]))
    delta = ops.sum(target * ops.einsum("...l,lm->...m", probs, matrix), axis=-1, keepdims=True)
    alpha = ops.sum(target * matrix[0], axis=-1, keepdims=True)
    axes = tuple(range(1, len(probs.shape)))
    error = ops.sum(voxel_weights * delta, axes)
    true_positive = ops.sum(voxel_weights * alpha * (1.0 - delta), axes)
    score = (2.0 * true_positive + _EPSILON) / (2.0 * true_positive + error + _EPSILON)
    return 1.0 - ops.mean(score)
