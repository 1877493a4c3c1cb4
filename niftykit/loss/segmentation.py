"""Segmentation losses (NiftyNet ``loss_segmentation.py`` semantics).

As in NiftyNet, Dice losses are computed per batch element over all classes
(background included) and then averaged over the batch, with ε = 1e-5.
Arguments: ``logits`` ``(batch, x, y, z, num_classes)`` (any float dtype, computed in
float32) and ``labels`` ``(batch, x, y, z, 1)`` integer class indices.

References:
    Milletari et al., "V-Net", 3DV 2016 (arXiv:1606.04797): Dice with squared denominator.
    Isensee et al., "nnU-Net", Nature Methods 2021: Dice plus cross-entropy.
"""

from __future__ import annotations

from typing import Any

from keras import ops

__all__ = ["dice", "dice_nosquare", "cross_entropy", "dice_plus_xent"]

_EPSILON = 1e-5
_SPATIAL = (1, 2, 3)


def _probs_and_onehot(logits: Any, labels: Any):
    logits = ops.cast(logits, "float32")
    probs = ops.softmax(logits, axis=-1)
    onehot = ops.one_hot(ops.squeeze(ops.cast(labels, "int32"), -1), ops.shape(logits)[-1])
    return probs, onehot


def _dice(logits: Any, labels: Any, square: bool) -> Any:
    probs, onehot = _probs_and_onehot(logits, labels)
    overlap = ops.sum(probs * onehot, axis=_SPATIAL)
    if square:
        total = ops.sum(ops.square(probs), axis=_SPATIAL) + ops.sum(onehot, axis=_SPATIAL)
    else:
        total = ops.sum(probs, axis=_SPATIAL) + ops.sum(onehot, axis=_SPATIAL)
    per_class = (2.0 * overlap + _EPSILON) / (total + _EPSILON)
    return 1.0 - ops.mean(per_class)


def dice(logits: Any, labels: Any) -> Any:
    """NiftyNet ``Dice``: 1 − mean soft Dice, squared denominator (Milletari 2016)."""
    return _dice(logits, labels, square=True)


def dice_nosquare(logits: Any, labels: Any) -> Any:
    """NiftyNet ``Dice_NS``: 1 − mean soft Dice, plain denominator."""
    return _dice(logits, labels, square=False)


def cross_entropy(logits: Any, labels: Any) -> Any:
    """Voxel-wise softmax cross-entropy, averaged over voxels and batch."""
    logits = ops.cast(logits, "float32")
    target = ops.squeeze(ops.cast(labels, "int32"), -1)
    return ops.mean(ops.sparse_categorical_crossentropy(target, logits, from_logits=True))


def dice_plus_xent(logits: Any, labels: Any) -> Any:
    """NiftyNet ``DicePlusXEnt``: Dice_NS plus cross-entropy (Isensee et al.)."""
    return dice_nosquare(logits, labels) + cross_entropy(logits, labels)
