"""Classification losses (NiftyNet ``loss_classification.py``) and class weights for imbalance.

Registered through the segmentation ``CrossEntropy`` name, which hands rank-2
logits here, so a NiftyNet classification config (``loss_type = CrossEntropy``)
works unchanged. ``class_weights`` make it cost-sensitive (``training.class_weights``):
a screening set with few positives (CAD4TB-style chest X-rays, Hogeweg et al.,
IEEE TMI 34(12), 2015) can weigh a missed positive more than a false alarm.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from keras import ops

__all__ = ["cross_entropy", "balanced_class_weights"]


def cross_entropy(logits: Any, labels: Any, weights: Optional[Any] = None,
                  class_weights: Optional[Sequence[float]] = None) -> Any:
    """Softmax cross-entropy of whole-image classes, averaged over the batch.

    ``e_b = −log softmax(logits_b)[label_b]``; the loss is ``mean_b e_b``, or with
    ``weights`` ``Σ_b w_b e_b / max(Σ_b w_b, 1e-6)``. ``class_weights`` ``c`` scale
    each sample by its class: ``mean_b c[label_b] e_b`` (Keras' ``class_weight`` and
    scikit-learn's convention: the expected loss is the cost-weighted risk, and a
    batch without positives keeps its scale); with ``weights`` too, ``w_b`` becomes
    ``w_b c[label_b]`` in the weighted mean's numerator only.

    Args:
        logits: ``(batch, num_classes)`` unnormalised scores, any float dtype
            (computed in float32).
        labels: ``(batch,)`` or ``(batch, 1)`` integer class indices.
        weights: optional ``(batch,)`` or ``(batch, 1)`` float sample weights.
        class_weights: optional ``(num_classes,)`` positive weights, class index order.

    Returns:
        Scalar float32 loss.
    """
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    per_sample = ops.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                                     from_logits=True)
    scaled = per_sample
    if class_weights is not None:
        table = ops.convert_to_tensor(np.asarray(class_weights, np.float32))
        scaled = per_sample * ops.take(table, labels)
    if weights is None:
        return ops.mean(scaled)
    weights = ops.reshape(ops.cast(weights, "float32"), (-1,))
    return ops.sum(weights * scaled) / ops.maximum(ops.sum(weights), 1e-6)


def balanced_class_weights(counts: Sequence[int]) -> tuple:
    """Inverse-frequency class weights ``n / (K n_c)`` (scikit-learn's ``"balanced"``).

    With them every class carries the same total weight, ``n / K``; a balanced set
    gets weights of 1.

    Args:
        counts: ``(K,)`` number of training subjects per class, index order.

    Returns:
        ``K`` positive floats.

    Raises:
        ValueError: a class has no subject (its weight would be infinite).
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.size == 0 or np.any(counts <= 0):
        missing = [int(c) for c in np.flatnonzero(counts <= 0)]
        raise ValueError(f"inverse-frequency class weights need every class in the training "
                         f"subjects; class(es) {missing} have none (counts {counts.astype(int).tolist()})")
    return tuple(float(w) for w in counts.sum() / (counts.size * counts))
