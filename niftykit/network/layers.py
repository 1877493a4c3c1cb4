"""Small building blocks shared by the networks: activation, normalisation,
initialiser and regulariser lookup by NiftyNet's names."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import keras
from keras import ops

__all__ = ["activation_layer", "norm_layer", "initializer", "regularizer", "ACTIVATIONS", "Crop3D",
           "ZeroPad3D", "zero_pad", "PReLU", "BatchNorm"]

ACTIVATIONS = ("relu", "relu6", "elu", "selu", "prelu", "leakyrelu", "softplus",
               "softsign", "sigmoid", "tanh")
_INITIALIZERS = {
    "constant": "Constant", "zeros": "Zeros", "ones": "Ones", "orthogonal": "Orthogonal",
    "variance_scaling": "VarianceScaling", "glorot_normal": "GlorotNormal",
    "glorot_uniform": "GlorotUniform", "he_normal": "HeNormal", "he_uniform": "HeUniform",
}


def activation_layer(name: str, layer_name: str) -> keras.layers.Layer:
    """A Keras layer for NiftyNet's ``activation_function`` names."""
    key = name.lower()
    if key == "prelu":
        return PReLU(shared_axes=[1, 2, 3], name=layer_name)
    if key == "leakyrelu":
        return keras.layers.LeakyReLU(negative_slope=0.01, name=layer_name)
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}' (available: {', '.join(ACTIVATIONS)})")
    return keras.layers.Activation(key, name=layer_name)


def norm_layer(kind: Optional[str], channels: int, layer_name: str) -> Optional[keras.layers.Layer]:
    """Batch, instance or group normalisation over channels-last features, or None.

    Batch normalisation keeps its moving averages with momentum 0.9 (NiftyNet's
    ``moving_decay``), not Keras' 0.99: with 0.99 the averages that inference uses still
    hold 5 % of their initial values after 300 iterations, and DeepMedic trained for 300
    iterations on generated shapes scored Dice 0.60 / 0.06 at inference against 0.80 /
    0.83 with 0.9 (same training loss; measured 2026-11-26).
    """
    if kind in (None, "none"):
        return None
    if kind == "batch":
        return BatchNorm(momentum=0.9, name=layer_name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, name=layer_name)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=min(8, channels), name=layer_name)
    raise ValueError(f"unknown normalisation '{kind}' (batch, instance, group, none)")


def initializer(spec: Union[str, Mapping[str, Any]], args: Optional[Mapping[str, Any]] = None):
    """Keras initialiser from a NiftyNet name (``he_normal``...) and its arguments."""
    if not isinstance(spec, str):
        return keras.initializers.get(dict(spec))
    key = spec.lower()
    if key == "uniform_scaling":
        return keras.initializers.VarianceScaling(distribution="uniform", **dict(args or {}))
    class_name = _INITIALIZERS.get(key, spec)
    return keras.initializers.get({"class_name": class_name, "config": dict(args or {})})


def regularizer(reg_type: str, decay: float):
    """L1 or L2 weight regulariser (NiftyNet ``reg_type`` and ``decay``), None if decay is 0."""
    if not decay:
        return None
    if reg_type.upper() == "L1":
        return keras.regularizers.L1(decay)
    return keras.regularizers.L2(decay)


def zero_pad(x: Any, paddings: Sequence[Sequence[int]]) -> Any:
    """Zero padding of ``x`` by ``paddings`` (one ``(before, after)`` per axis) as
    TensorFlow's ``PadV2``, not ``Pad``.

    The same values; the difference is for Grappler. Its remapper fuses a ``Pad`` into
    the oneDNN convolution that reads it even when the padded tensor has other readers,
    as it always has in training (the convolution's filter gradient reads it too), then
    fails on the dangling reader and gives up the whole pass: no convolution of the
    step gets its bias (or activation) fused ("remapper failed: ... fanout ... exist for
    missing node ...Pad", TensorFlow 2.21). ``PadV2`` is not matched.
    """
    import tensorflow as tf

    return tf.raw_ops.PadV2(input=x, paddings=[list(p) for p in paddings],
                            constant_values=tf.zeros([], x.dtype))


@keras.saving.register_keras_serializable(package="niftykit")
class ZeroPad3D(keras.layers.ZeroPadding3D):
    """``keras.layers.ZeroPadding3D`` (channels-last) padding with :func:`zero_pad`.

    The same layer and output; in a training step Grappler's remapper still fuses the
    step's convolutions with their biases, which a plain ``Pad`` before a convolution
    prevents (see :func:`zero_pad`).
    """

    def call(self, inputs: Any) -> Any:
        if self.data_format != "channels_last":
            return super().call(inputs)
        return zero_pad(inputs, [(0, 0), *self.padding, (0, 0)])


@keras.saving.register_keras_serializable(package="niftykit")
class PReLU(keras.layers.PReLU):
    """``keras.layers.PReLU`` computed as ``where(x ≥ 0, x, α x)``.

    The same layer (weights, names, ``get_config``) and the same values and gradients
    (but at exactly 0, where this passes the gradient through). Keras writes it as
    ``relu(x) − α relu(−x)``; after a residual addition Grappler's remapper then tries to
    fuse the convolution, its bias, the addition and the first ``Relu`` while the second
    reads the addition too, fails ("fanout ... exist for missing node ...Add",
    TensorFlow 2.21) and gives up the whole training step: no convolution of the V-Net
    had its bias fused. The ``where`` form is as fast (2 × 64³ × 16 with its gradient,
    measured here, 2026-11-26) and matches no fusion pattern.
    """

    def call(self, inputs: Any) -> Any:
        return ops.where(inputs >= 0, inputs, ops.cast(self.alpha, inputs.dtype) * inputs)


@keras.saving.register_keras_serializable(package="niftykit")
class Crop3D(keras.layers.Layer):
    """``keras.layers.Cropping3D`` as one ``slice``: the same output, a faster gradient.

    Cropping3D indexes with ``x[:, a:-b, ...]`` (a strided slice); on CPU TensorFlow's
    ``StridedSliceGrad`` was 5–7× slower than the pad that is ``Slice``'s gradient on a
    2 × 65³ × 16 tensor (measured here, 2026-11-26), and the residual U-Net's training
    step pays it after every transposed convolution. That gradient pads with
    :func:`zero_pad` (``PadV2``): TensorFlow's own gradient of ``Slice`` is a ``Pad``,
    which, read by the convolutions that follow in the backward pass, makes Grappler's
    remapper give up on the whole step.

    Args:
        cropping: ``((x0, x1), (y0, y1), (z0, z1))`` voxels removed before and after.
    """

    def __init__(self, cropping: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cropping = tuple((int(a), int(b)) for a, b in cropping)

    def call(self, inputs: Any) -> Any:
        cropping = [(0, 0), *self.cropping, (0, 0)]

        @ops.custom_gradient
        def crop(x: Any) -> Any:
            shape = ops.shape(x)
            start = [a for a, _ in cropping]
            size = [shape[i] - a - b for i, (a, b) in enumerate(cropping)]

            def grad(upstream: Any) -> Any:
                return zero_pad(upstream, cropping)

            return ops.slice(x, start, size), grad

        return crop(inputs)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        spatial = [None if n is None else n - a - b
                   for n, (a, b) in zip(input_shape[1:4], self.cropping)]
        return (input_shape[0], *spatial, input_shape[4])

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


@keras.saving.register_keras_serializable(package="niftykit")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training-mode gradient is written out.

    The same layer (weights, names, moving averages, ``get_config``, inference; an
    ``isinstance`` of Keras' class) computing the same function. In training, automatic
    differentiation of Keras' moments and normalisation builds about twenty full-size
    element-wise ops and broadcasts (``Tile``); the closed form

        ∂L/∂x = γ σ⁻¹ (∂L/∂y − mean(∂L/∂y) − x̂ · mean(∂L/∂y · x̂)),  x̂ = (x − μ) σ⁻¹,

    needs two sums and one fused multiply-add over the tensor, with
    ``∂L/∂γ = Σ ∂L/∂y · x̂`` and ``∂L/∂β = Σ ∂L/∂y``. Statistics are float32 whatever the
    input dtype, as in Keras. The residual U-Net's training step (2 × 64³, 9 BN layers)
    was 3 % faster in float32 and 4 % in bfloat16 (measured here, 2026-11-26).
    TensorFlow's fused batch-norm kernel (oneDNN's on CPU, fed 5-D tensors as 4-D) made
    that step 5–14 % slower, although it was 2.5× faster for one layer alone.

    Masks, renorm, synchronised statistics, an axis other than the last and other
    backends run Keras' own code.
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or self.renorm or \
                self.synchronized or self.axis not in (-1, len(inputs.shape) - 1) or \
                keras.backend.backend() != "tensorflow":
            return super().call(inputs, training=training, mask=mask)
        channels = int(inputs.shape[-1])
        # tensors, not variables: a custom gradient's function must not read variables
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,))
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,))
        y, mean, variance = _batch_norm_train(inputs, gamma, beta, self.epsilon)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return ops.cast(y, self.compute_dtype)


def _batch_norm_train(inputs: Any, gamma: Any, beta: Any, epsilon: float) -> tuple:
    """Training-mode batch norm over the last axis: (output, batch mean, biased variance)."""
    axes = tuple(range(len(inputs.shape) - 1))
    dtype = inputs.dtype

    @ops.custom_gradient
    def forward(x: Any, gamma: Any, beta: Any) -> Any:
        x32 = ops.cast(x, "float32")
        mean, variance = ops.moments(x32, axes)
        inv = ops.rsqrt(variance + epsilon)
        scale = gamma * inv
        y = ops.cast(x32 * scale + (beta - mean * scale), dtype)

        def grad(*args: Any, upstream: Any = None) -> tuple:
            dy = ops.cast(args[0] if upstream is None else upstream[0], "float32")
            count = ops.cast(ops.size(dy) // ops.shape(dy)[-1], "float32")
            sum_dy = ops.sum(dy, axes)
            sum_dy_xhat = (ops.sum(dy * x32, axes) - mean * sum_dy) * inv
            # ∂L/∂x = scale·dy + a·x + b, per channel a and b
            a = -scale * inv * sum_dy_xhat / count
            b = -scale * sum_dy / count - a * mean
            return ops.cast(dy * scale + x32 * a + b, dtype), sum_dy_xhat, sum_dy

        return (y, ops.stop_gradient(mean), ops.stop_gradient(variance)), grad

    return forward(inputs, gamma, beta)
