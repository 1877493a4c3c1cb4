"""Segmentation losses: Dice family and cross-entropy (NiftyNet ``loss_segmentation.py``).

As in NiftyNet, Dice losses are computed per batch element over all classes
(background included) and then averaged over the batch, with ε = 1e-5, on the
softmax of the logits. Arguments shared by every segmentation loss:

* ``logits`` ``(batch, x, y, z, num_classes)``, any float dtype (bfloat16 and
  float16 are cast to float32 before any arithmetic);
* ``labels`` ``(batch, x, y, z, 1)`` (or ``(batch, x, y, z)``) integer class
  indices in ``0 .. num_classes − 1`` (the label mapping checks this as it reads the data;
  without weights, the Dice losses sum through matrix products that count on it), or,
  for the ``*_Dense`` losses, ``(batch, x, y, z, num_classes)`` one-hot (or soft) float
  labels;
* ``weights`` optional ``(batch, x, y, z, 1)`` (or ``(batch, x, y, z)``) float
  voxel weights (NiftyNet's ``weight`` input) that multiply every voxel's
  contribution to each sum; ``None`` weighs every voxel 1.

References:
    Milletari et al., "V-Net", 3DV 2016 (arXiv:1606.04797): Dice with squared denominator.
    Isensee et al., "nnU-Net", Nature Methods 2021 (arXiv:1809.10486): Dice plus cross-entropy.
    Gibson et al., "Automatic multi-organ segmentation on abdominal CT with dense
    V-networks", IEEE TMI 37(8) 2018 (doi:10.1109/TMI.2018.2806309, PMC6076994): Dice hinge.
    Lin et al., "Focal loss for dense object detection", ICCV 2017 (arXiv:1708.02002).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from keras import ops

from niftykit.loss.classification import cross_entropy as _classification_xent

__all__ = ["dice", "dice_nosquare", "dice_dense", "dice_dense_nosquare", "dice_hinge",
           "cross_entropy", "cross_entropy_dense", "dice_plus_xent", "focal"]

_EPSILON = 1e-5


def _spatial_axes(tensor: Any) -> Tuple[int, ...]:
    return tuple(range(1, len(tensor.shape) - 1))


def _one_hot(labels: Any, logits: Any) -> Any:
    labels = ops.cast(labels, "int32")
    if len(labels.shape) == len(logits.shape):
        labels = ops.squeeze(labels, -1)
    return ops.one_hot(labels, logits.shape[-1], dtype="float32")


def _voxel_weights(weights: Optional[Any], logits: Any) -> Any:
    """``weights`` as float32 ``(batch, x, y, z, 1)``, or the scalar 1."""
    if weights is None:
        return 1.0
    weights = ops.cast(weights, "float32")
    if len(weights.shape) == len(logits.shape) - 1:
        weights = ops.expand_dims(weights, -1)
    return weights


def _inputs(logits: Any, labels: Any, weights: Optional[Any], dense: bool = False):
    """Softmax probabilities, one-hot labels and voxel weights, all float32."""
    probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    target = ops.cast(labels, "float32") if dense else _one_hot(labels, logits)
    return probs, target, _voxel_weights(weights, logits)


def _safe_divide(numerator: Any, denominator: Any, empty: float) -> Any:
    """``numerator / denominator``, or ``empty`` where the denominator is 0 (finite gradient)."""
    nonzero = denominator > 0
    return ops.where(nonzero, numerator / ops.where(nonzero, denominator, 1.0), empty)


def _voxel_mean(values: Any, weights: Optional[Any]) -> Any:
    """Mean of per-voxel ``values`` ``(batch, x, y, z)``; weighted per batch element."""
    if weights is None:
        return ops.mean(values)
    weights = ops.cast(weights, "float32")
    if len(weights.shape) > len(values.shape):
        weights = ops.squeeze(weights, -1)
    axes = tuple(range(1, len(values.shape)))
    per_element = ops.sum(values * weights, axes) / ops.maximum(ops.sum(weights, axes), 1e-6)
    return ops.mean(per_element)


def _dice_terms(probs: Any, target: Any, weights: Any, square: bool):
    """Per batch element and class: overlap Σ w p g and denominator, ``(batch, classes)``."""
    axes = _spatial_axes(probs)
    if isinstance(weights, float) and weights == 1.0:  # no weight map: no multiplications by 1
        overlap = ops.sum(probs * target, axes)
        if square:
            return overlap, ops.sum(ops.square(probs), axes) + ops.sum(ops.square(target), axes)
        return overlap, ops.sum(probs, axes) + ops.sum(target, axes)
    overlap = ops.sum(weights * probs * target, axes)
    if square:
        total = (ops.sum(weights * ops.square(probs), axes)
                 + ops.sum(weights * ops.square(target), axes))
    else:
        total = ops.sum(weights * probs, axes) + ops.sum(weights * target, axes)
    return overlap, total


def _mean_dice_loss(overlap: Any, total: Any) -> Any:
    """``1 − mean_{batch, c} (2 overlap + ε) / (total + ε)`` from the per-class sums."""
    return 1.0 - ops.mean((2.0 * overlap + _EPSILON) / (total + _EPSILON))


def _dice_loss(probs: Any, target: Any, weights: Any, square: bool) -> Any:
    return _mean_dice_loss(*_dice_terms(probs, target, weights, square))


def _sparse_sums(probs: Any, labels: Any, square: bool,
                 log_probs: Optional[Any] = None) -> Tuple[Any, Any, Optional[Any]]:
    """Dice sums for integer labels in ``0 .. C − 1`` without voxel weights, ``(batch, C)``:
    the overlap ``Σ_i p_ic g_ic``, the denominator ``Σ_i p_ic² + Σ_i g_ic`` (``square``) or
    ``Σ_i p_ic + Σ_i g_ic``, and, given ``log_probs``, ``Σ_i g_ic log p_ic``.

    Through batched matrix products over the voxels (``(C, C)`` each): the overlap is the
    diagonal of ``Pᵀ G``; ``Σ p`` its row sum (every voxel has exactly one label), ``Σ p²``
    the diagonal of ``Pᵀ P``, the cross-entropy term the diagonal of ``(log P)ᵀ G``; the
    label counts a ``bincount``. A product reads its operands once and its gradient is
    one more product, where the element-wise form (multiply, reduce over the spatial axes,
    broadcast the gradient back with ``Tile``) makes several full-size passes. With its
    gradient on 2 × 64³ × 9 logits (old → new, measured here, 2026-11-26): Dice 24.3 → 20.5
    ms, Dice_NS 20.8 → 16.1, DiceHinge 24.3 → 20.5, DicePlusXEnt 23.2 → 19.2; with 2
    classes the same time (11.7 → 12.0 ms for Dice). The values agree to float32 rounding
    (the sums run in another order).
    """
    import tensorflow as tf

    classes = probs.shape[-1]
    batch = tf.shape(probs)[0]
    probs = tf.reshape(tf.cast(probs, tf.float32), [batch, -1, classes])
    labels = tf.reshape(tf.cast(labels, tf.int32), [batch, -1])
    target = tf.one_hot(labels, classes, dtype=tf.float32)
    products = tf.linalg.matmul(probs, target, transpose_a=True)  # [b, c, c']: Σ p_ic g_ic'
    overlap = tf.linalg.diag_part(products)
    if square:
        prob_sum = tf.linalg.diag_part(tf.linalg.matmul(probs, probs, transpose_a=True))
    else:
        prob_sum = tf.reduce_sum(products, axis=-1)
    offsets = tf.range(batch)[:, None] * classes
    counts = tf.math.bincount(tf.reshape(labels + offsets, [-1]), minlength=batch * classes,
                              maxlength=batch * classes, dtype=tf.float32)
    total = prob_sum + tf.reshape(counts, [batch, classes])
    log_true = None
    if log_probs is not None:
        log_probs = tf.reshape(tf.cast(log_probs, tf.float32), [batch, -1, classes])
        log_true = tf.linalg.diag_part(tf.linalg.matmul(log_probs, target, transpose_a=True))
    return overlap, total, log_true


def _sparse(logits: Any, weights: Optional[Any]) -> bool:
    """Whether the matrix-product sums of :func:`_sparse_sums` apply: segmentation logits
    (spatial axes) and no voxel weights."""
    return weights is None and len(logits.shape) > 2


def _dice_of(logits: Any, labels: Any, weights: Optional[Any], square: bool) -> Tuple[Any, Any]:
    """Per batch element and class: the Dice overlap and denominator of softmax(logits)."""
    if _sparse(logits, weights):
        overlap, total, _ = _sparse_sums(ops.softmax(ops.cast(logits, "float32"), axis=-1),
                                         labels, square)
        return overlap, total
    return _dice_terms(*_inputs(logits, labels, weights), square=square)


def dice(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``Dice``: 1 − mean over classes of the soft Dice (Milletari et al. 2016).

    ``D_c = (2 Σ_i w_i p_ic g_ic + ε) / (Σ_i w_i p_ic² + Σ_i w_i g_ic + ε)`` per batch
    element; the loss is ``1 − mean_{batch, c} D_c``. An absent class predicted
    absent scores D = 1.

    Returns:
        Scalar float32 loss.
    """
    return _mean_dice_loss(*_dice_of(logits, labels, weights, square=True))


def dice_nosquare(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``Dice_NS``: as :func:`dice` with ``Σ p + Σ g`` in the denominator."""
    return _mean_dice_loss(*_dice_of(logits, labels, weights, square=False))


def dice_dense(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``Dice_Dense``: :func:`dice` with one-hot labels ``(batch, x, y, z, classes)``.

    The denominator is ``Σ p² + Σ g²`` (``= Σ g`` for hard one-hot labels).
    """
    return _dice_loss(*_inputs(logits, labels, weights, dense=True), square=True)


def dice_dense_nosquare(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``Dice_Dense_NS``: :func:`dice_nosquare` with one-hot labels."""
    return _dice_loss(*_inputs(logits, labels, weights, dense=True), square=False)


def dice_hinge(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """Dice loss with hinge penalties on failing classes: the dense V-network's loss.

    Gibson et al., IEEE TMI 2018 (PMC6076994), trained the dense V-network with the
    "Dice hinge" loss shipped as ``dice_hinge.py`` in NiftyNet's model zoo
    (``dense_vnet_abdominal_ct``; its code is quoted in NifTK/NiftyNet issue #34). The
    formula follows that file; the paper's own wording of the loss could not be checked
    here (only its abstract was available). Per batch element::

        D_c  = 2 Σ_i w_i p_ic g_ic / (Σ_i w_i p_ic² + Σ_i w_i g_ic + ε)
        h1_c = (10 · min(D_c, 0.1) − 1)²       # 1 at D = 0, 0 from D ≥ 0.1
        h2_c = (100 · min(D_c, 0.01) − 1)²     # 1 at D = 0, 0 from D ≥ 0.01
        L    = 1 − mean_c D_c + 10 · mean_c h1_c + 10 · mean_c h2_c

    averaged over the batch: a steep extra penalty once a class's Dice falls below 0.1,
    steeper below 0.01, up to 20 / num_classes for a class at D = 0. As in the
    original, ε is in the denominator only: a class absent from the labels scores
    D = 0 whatever the prediction, which adds the constant 20 / num_classes to the
    loss but no gradient (the zoo's windows held every organ). ``weights`` (ignored
    by the original) weigh the sums.

    Returns:
        Scalar float32 loss (0 for a perfect prediction with every class present).
    """
    overlap, total = _dice_of(logits, labels, weights, square=True)
    score = 2.0 * overlap / (total + _EPSILON)
    hinge_01 = ops.square(10.0 * ops.minimum(score, 0.1) - 1.0)
    hinge_001 = ops.square(100.0 * ops.minimum(score, 0.01) - 1.0)
    return 1.0 - ops.mean(score) + 10.0 * ops.mean(hinge_01) + 10.0 * ops.mean(hinge_001)


def cross_entropy(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``CrossEntropy``: softmax cross-entropy, mean over voxels and batch.

    One name serves both NiftyNet factories: ``logits`` of rank 2 ``(batch, classes)``
    with labels ``(batch,)`` or ``(batch, 1)`` are a classification and go to
    :func:`niftykit.loss.classification.cross_entropy`. With ``weights``, each batch
    element's loss is ``Σ_i w_i e_i / max(Σ_i w_i, 1e-6)`` (NiftyNet), then averaged.

    Returns:
        Scalar float32 loss.
    """
    if len(logits.shape) == 2:
        return _classification_xent(logits, labels, weights)
    # log Σ exp(z) − z_true, with z_true picked by a one-hot product: the same value as
    # sparse softmax cross-entropy, and on CPU 4–6× faster with its gradient than TF's
    # fused SparseSoftmaxCrossEntropyWithLogits on 2 × 64³ × 9 logits (measured here).
    logits = ops.cast(logits, "float32")
    picked = ops.sum(_one_hot(labels, logits) * logits, axis=-1)
    per_voxel = ops.logsumexp(logits, axis=-1) - picked
    return _voxel_mean(per_voxel, weights)


def cross_entropy_dense(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``CrossEntropy_Dense``: :func:`cross_entropy` with one-hot (or soft) labels."""
    per_voxel = ops.categorical_crossentropy(ops.cast(labels, "float32"),
                                             ops.cast(logits, "float32"), from_logits=True)
    return _voxel_mean(per_voxel, weights)


def dice_plus_xent(logits: Any, labels: Any, weights: Optional[Any] = None) -> Any:
    """NiftyNet ``DicePlusXEnt``: :func:`dice_nosquare` plus :func:`cross_entropy` (Isensee et al.).

    NiftyNet returned ``xent − mean Dice``; this is that plus 1, so that a perfect
    prediction scores 0 (same gradients). Integer labels must lie in ``0 .. C − 1`` (the
    label mapping checks that when the data are read).
    """
    if len(logits.shape) == 2:
        return dice_nosquare(logits, labels, weights) + cross_entropy(logits, labels, weights)
    # one log-softmax serves both terms (the separate functions compute the softmax twice)
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    if _sparse(logits, weights):
        overlap, total, log_true = _sparse_sums(ops.exp(log_probs), labels, square=False,
                                                log_probs=log_probs)
        voxels = ops.cast(ops.size(log_probs) // log_probs.shape[-1], "float32")
        return _mean_dice_loss(overlap, total) - ops.sum(log_true) / voxels
    target = _one_hot(labels, logits)
    dice_term = _dice_loss(ops.exp(log_probs), target, _voxel_weights(weights, logits),
                           square=False)
    return dice_term + _voxel_mean(-ops.sum(target * log_probs, axis=-1), weights)


def focal(logits: Any, labels: Any, weights: Optional[Any] = None, gamma: float = 2.0) -> Any:
    """Softmax focal loss (Lin et al., ICCV 2017), γ = 2; not in NiftyNet.

    ``FL_i = −(1 − p_i,t)^γ log p_i,t`` with ``p_i,t`` the softmax probability of
    voxel i's true class (no α class balancing), averaged like :func:`cross_entropy`.
    γ = 0 is the cross-entropy.

    Returns:
        Scalar float32 loss.
    """
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    log_true = ops.sum(_one_hot(labels, logits) * log_probs, axis=-1)
    per_voxel = -ops.power(1.0 - ops.exp(log_true), gamma) * log_true
    return _voxel_mean(per_voxel, weights)
