"""Losses that trade false positives against false negatives: ``Tversky`` and ``SensSpec``.

Arguments as in :mod:`niftykit.loss.segmentation`: ``logits`` ``(batch, x, y, z,
num_classes)`` (any float dtype, computed in float32), integer ``labels``
``(batch, x, y, z, 1)``, optional voxel ``weights`` ``(batch, x, y, z, 1)``. Both
losses are computed per batch element on the softmax and averaged over the batch.

References:
    Salehi et al., "Tversky loss function for image segmentation using 3D fully
    convolutional deep networks", MLMI 2017 (arXiv:1706.05721).
    Brosch et al., "Deep convolutional encoder networks for multiple sclerosis lesion
    segmentation", MICCAI 2015 (doi:10.1007/978-3-319-24574-4_1).
"""

from __future__ import annotations

from typing import Any, Optional

from keras import ops

from niftykit.loss.segmentation import _EPSILON, _inputs, _spatial_axes

__all__ = ["tversky", "sensitivity_specificity"]


def tversky(logits: Any, labels: Any, weights: Optional[Any] = None, alpha: float = 0.5,
            beta: float = 0.5, per_class: bool = False) -> Any:
    """NiftyNet ``Tversky``: 1 − Tversky index (Salehi et al. 2017), α = β = 0.5.

    With ``TP = Σ w p g``, ``FP = Σ w p (1 − g)``, ``FN = Σ w (1 − p) g``::

        T = (TP + ε) / (TP + α FP + β FN + ε),   loss = 1 − T

    By default, as in NiftyNet, the sums run over voxels *and classes* (one index per
    batch element). With softmax probabilities and one-hot labels FP = FN = N − TP
    then, so only α + β matters and α = β = 0.5 gives ``T = TP / N``: one minus the
    mean probability of the true class. ``per_class=True`` computes one index per
    class (Salehi's binary form applied to each class, background included) and
    averages them, where α and β do act separately. ε (NiftyNet's, which it added to
    the denominator only) keeps an empty class finite.

    Args:
        logits: ``(batch, x, y, z, num_classes)``.
        labels: ``(batch, x, y, z, 1)`` integer classes.
        weights: optional ``(batch, x, y, z, 1)`` voxel weights.
        alpha: weight of the false positives.
        beta: weight of the false negatives.
        per_class: average per-class indices instead of pooling the classes.

    Returns:
        Scalar float32 loss.
    """
    probs, target, voxel_weights = _inputs(logits, labels, weights)
    axes = _spatial_axes(probs) if per_class else tuple(range(1, len(probs.shape)))
    true_pos = ops.sum(voxel_weights * probs * target, axes)
    false_pos = ops.sum(voxel_weights * probs * (1.0 - target), axes)
    false_neg = ops.sum(voxel_weights * (1.0 - probs) * target, axes)
    index = (true_pos + _EPSILON) / (true_pos + alpha * false_pos + beta * false_neg + _EPSILON)
    return 1.0 - ops.mean(index)


def sensitivity_specificity(logits: Any, labels: Any, weights: Optional[Any] = None,
                            r: float = 0.05) -> Any:
    """NiftyNet ``SensSpec``: sensitivity-specificity loss (Brosch et al. 2015), r = 0.05.

    Squared errors ``e_ic = (g_ic − p_ic)²`` are averaged inside and outside each
    class, and summed over the classes::

        SS = Σ_c [ r Σ_i w_i e_ic g_ic / (Σ_i w_i g_ic + ε)
                   + (1 − r) Σ_i w_i e_ic (1 − g_ic) / (Σ_i w_i (1 − g_ic) + ε) ]

    The first term is one minus a soft sensitivity, the second one minus a soft
    specificity; r = 0.05 (Brosch suggests 0.01–0.10) weighs the rare in-class
    voxels. ε = 1e-5 keeps a class absent from the labels finite. NiftyNet ignored
    the weight map; here ``weights`` weigh every sum.

    Args:
        logits: ``(batch, x, y, z, num_classes)``.
        labels: ``(batch, x, y, z, 1)`` integer classes.
        weights: optional ``(batch, x, y, z, 1)`` voxel weights.
        r: weight of the in-class (sensitivity) term.

    Returns:
        Scalar float32 loss.
    """
    probs, target, voxel_weights = _inputs(logits, labels, weights)
    axes = _spatial_axes(probs)
    error = ops.square(target - probs)
    outside = 1.0 - target
    inside_term = (ops.sum(voxel_weights * error * target, axes)
                   / (ops.sum(voxel_weights * target, axes) + _EPSILON))
    outside_term = (ops.sum(voxel_weights * error * outside, axes)
                    / (ops.sum(voxel_weights * outside, axes) + _EPSILON))
    return ops.mean(ops.sum(r * inside_term + (1.0 - r) * outside_term, axis=-1))
