"""Regression losses (NiftyNet ``loss_regression.py``).

Every loss has the signature ``loss(prediction, target, weights=None) -> scalar``
with ``prediction`` and ``target`` ``(batch, ..., channels)`` (e.g. ``(batch, x, y,
z, channels)``), any float dtype (computed in float32), and optional voxel
``weights`` broadcastable to them (``(batch, ..., 1)`` or ``(batch, ..., channels)``).
As in NiftyNet, each loss is computed per batch element over all its values and
then averaged over the batch; a weighted mean is ``Σ w·v / Σ w`` over the element.
With residuals ``r = prediction − target``:

* ``L1Loss`` and ``MAE``: ``mean |r|`` (NiftyNet's two names compute the same value);
* ``L2Loss``: ``Σ r² / 2`` — a *sum*, not a mean (``tf.nn.l2_loss``, as NiftyNet);
* ``RMSE``: ``sqrt(mean r²)``;
* ``Huber``: ``mean(r²/2 if |r| ≤ δ else δ(|r| − δ/2))``, δ = 1;
* ``SmoothL1``: NiftyNet's piecewise loss (see :func:`smooth_l1_loss`), not Girshick's;
* ``Cosine``: ``mean(1 − cos(prediction, target))`` over voxels, vectors along channels.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from keras import ops

__all__ = ["l1_loss", "l2_loss", "rmse_loss", "huber_loss", "smooth_l1_loss", "cosine_loss"]

_TINY = 1e-12


def _residuals(prediction: Any, target: Any) -> Any:
    return ops.cast(prediction, "float32") - ops.cast(target, "float32")


def _element_axes(values: Any) -> Tuple[int, ...]:
    return tuple(range(1, len(values.shape)))


def _element_mean(values: Any, weights: Optional[Any]) -> Any:
    """Per batch element (weighted) mean of ``values``, shape ``(batch,)``."""
    axes = _element_axes(values)
    if weights is None:
        return ops.mean(values, axis=axes)
    weights = ops.broadcast_to(ops.cast(weights, "float32"), ops.shape(values))
    return ops.sum(weights * values, axis=axes) / ops.maximum(ops.sum(weights, axis=axes), _TINY)


def _safe_sqrt(values: Any) -> Any:
    """``sqrt`` with a finite gradient at 0."""
    return ops.sqrt(ops.maximum(values, _TINY))


def l1_loss(prediction: Any, target: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``L1Loss`` and ``MAE``: mean absolute residual.

    Returns:
        Scalar float32 loss.
    """
    return ops.mean(_element_mean(ops.abs(_residuals(prediction, target)), weights))


def l2_loss(prediction: Any, target: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``L2Loss``: half the sum of squared residuals per batch element.

    ``Σ w r² / 2`` (NiftyNet's ``tf.nn.l2_loss``), averaged over the batch. It grows
    with the window size. NiftyNet's weighted form ``Σ (w r / Σ w)² / 2`` did not
    reduce to the unweighted one for w = 1; here weights multiply the squared
    residuals instead.

    Returns:
        Scalar float32 loss.
    """
    squared = ops.square(_residuals(prediction, target))
    if weights is not None:
        squared = ops.cast(weights, "float32") * squared
    return ops.mean(ops.sum(squared, axis=_element_axes(squared)) / 2.0)


def rmse_loss(prediction: Any, target: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``RMSE``: square root of the (weighted) mean squared residual, per element.

    The square root is floored at 1e-6 so that a perfect prediction has a finite
    gradient.

    Returns:
        Scalar float32 loss.
    """
    squared = ops.square(_residuals(prediction, target))
    return ops.mean(_safe_sqrt(_element_mean(squared, weights)))


def huber_loss(prediction: Any, target: Any, weights: Optional[Any] = None,
               delta: float = 1.0) -> Any:
    """NiftyNet ``Huber``: quadratic for ``|r| ≤ δ``, linear beyond (Huber 1964), δ = 1.

    Returns:
        Scalar float32 loss.
    """
    absolute = ops.abs(_residuals(prediction, target))
    per_value = ops.where(absolute > delta, delta * (absolute - delta / 2.0),
                          0.5 * ops.square(absolute))
    return ops.mean(_element_mean(per_value, weights))


def smooth_l1_loss(prediction: Any, target: Any, weights: Optional[Any] = None,
                   value_thresh: float = 0.5) -> Any:
    """NiftyNet ``SmoothL1``: squared near 0, linear, squared again for large residuals.

    With ``t = min(value_thresh, 1/value_thresh)`` (0.5) and ``T = 1/t`` (2), each
    ``a = |r|`` becomes ``t a²`` if ``a < t`` else ``a + t³ − t``; a value ``v`` above
    ``T`` after that becomes ``v² + T − T²``. The pieces join continuously. This is
    NiftyNet's definition, not the smooth L1 of Girshick (Fast R-CNN), which is the
    Huber loss with δ = 1.

    Returns:
        Scalar float32 loss.
    """
    low = min(value_thresh, 1.0 / value_thresh)
    high = 1.0 / low
    absolute = ops.abs(_residuals(prediction, target))
    value = ops.where(absolute < low, low * ops.square(absolute), absolute + low ** 3 - low)
    value = ops.where(value > high, ops.square(value) + high - high ** 2, value)
    return ops.mean(_element_mean(value, weights))


def _unit_vectors(vectors: Any, complete: bool) -> Any:
    if complete:
        rest = 1.0 - ops.minimum(ops.sum(ops.square(vectors), axis=-1, keepdims=True), 1.0)
        vectors = ops.concatenate([vectors, ops.where(rest > 0, _safe_sqrt(rest), 0.0)], axis=-1)
    norm = _safe_sqrt(ops.sum(ops.square(vectors), axis=-1, keepdims=True))
    return vectors / ops.maximum(norm, 1e-5)


def cosine_loss(prediction: Any, target: Any, weights: Optional[Any] = None,
                complete: bool = True) -> Any:
    """NiftyNet ``Cosine``: one minus the cosine between predicted and target vectors.

    The vectors run along the last (channel) axis; each voxel scores
    ``1 − <u, v>`` of the normalised vectors, averaged (weighted by ``weights``
    ``(batch, ..., 1)``) over the voxels of each batch element. With ``complete``
    (NiftyNet's ``to_complete``), vectors of norm below 1 are first given an extra
    component ``sqrt(1 − |x|²)`` that makes them unit vectors, so that their length
    counts too.

    Returns:
        Scalar float32 loss.
    """
    predicted = _unit_vectors(ops.cast(prediction, "float32"), complete)
    expected = _unit_vectors(ops.cast(target, "float32"), complete)
    per_voxel = 1.0 - ops.sum(predicted * expected, axis=-1, keepdims=True)
    return ops.mean(_element_mean(per_voxel, weights))
