"""Classification losses (NiftyNet ``loss_classification.py``).

Registered through the segmentation ``CrossEntropy`` name, which hands rank-2
logits here, so a NiftyNet classification config (``loss_type = CrossEntropy``)
works unchanged.
"""

from __future__ import annotations

from typing import Any, Optional

from keras import ops

__all__ = ["cross_entropy"]


def cross_entropy(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """Softmax cross-entropy of whole-image classes, averaged over the batch.

    ``e_b = −log softmax(logits_b)[label_b]``; the loss is ``mean_b e_b``, or with
    ``weights`` ``Σ_b w_b e_b / max(Σ_b w_b, 1e-6)``.

    Args:
        logits: ``(batch, num_classes)`` unnormalised scores, any float dtype
            (computed in float32).
        labels: ``(batch,)`` or ``(batch, 1)`` integer class indices.
        weights: optional ``(batch,)`` or ``(batch, 1)`` float sample weights.

    Returns:
        Scalar float32 loss.
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    per_sample = ops.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                                     from_logits=True)
    if weights is None:
        return ops.mean(per_sample)
    weights = ops.reshape(ops.cast(weights, "float32"), (-1,))
    return ops.sum(weights * per_sample) / ops.maximum(ops.sum(weights), 1e-6)
