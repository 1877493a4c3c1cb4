"""The dense V-network's building blocks: dense feature stacks, the spatial prior and
the trilinear resize that joins the skip maps (:mod:`niftykit.network.dense_vnet`
documents the mathematics and the paper's and NiftyNet's choices).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["DenseFeatureStack", "SpatialPrior", "linear_resize"]


def linear_resize(x: Any, size: Sequence[int]) -> Any:
    """Trilinear resize (half-pixel centres) of ``(batch, x, y, z, c)`` to ``size``.

    Computed in float32 (TensorFlow resizes to float32 anyway), cast back to ``x``'s dtype.
    """
    _, sx, sy, sz, ch = x.shape
    size = tuple(int(s) for s in size)
    if (sx, sy, sz) == size:
        return x
    y = ops.reshape(ops.cast(x, "float32"), (-1, sx, sy, sz * ch))
    y = ops.image.resize(y, size[:2], interpolation="bilinear")
    y = ops.reshape(y, (-1, size[0] * size[1], sz, ch))
    y = ops.image.resize(y, (size[0] * size[1], size[2]), interpolation="bilinear")
    return ops.cast(ops.reshape(y, (-1, *size, ch)), x.dtype)


class DenseFeatureStack(keras.layers.Layer):
    """A dense feature stack with its skip convolution and strided down-convolution.

    Returns ``(skip,)`` or ``(skip, down)``. Weights live here (kernels) and in
    the named norm/activation sub-layers; see the module docstring for the maths.
    """

    def __init__(self, growth: int, dilation_rates: Sequence[int], n_seg: int,
                 n_down: Optional[int], kernel: tuple, norm: str, activation: str,
                 dense: bool, use_bdo: bool, keep_prob: float, memory_efficient: bool,
                 conv_kwargs: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.growth, self.n_seg, self.n_down = growth, n_seg, n_down
        self.dilations = [tuple(d if k > 1 else 1 for k in kernel) for d in dilation_rates]
        self.kernel_shape, self.norm, self.dense = kernel, norm, dense
        self.use_bdo, self.keep_prob, self.memory_efficient = use_bdo, keep_prob, memory_efficient
        self.conv_kwargs = dict(conv_kwargs)
        n = len(self.dilations)
        self.norms = [norm_layer(norm, growth, f"{self.name}_norm{i}") for i in range(n)]
        self.acts = [activation_layer(activation, f"{self.name}_act{i}") for i in range(n)]
        self.skip_norm = norm_layer(norm, n_seg, f"{self.name}_skip_norm")
        self.skip_act = activation_layer(activation, f"{self.name}_skip_act")
        if n_down is not None:
            self.down_norm = norm_layer(norm, n_down, f"{self.name}_down_norm")
            self.down_act = activation_layer(activation, f"{self.name}_down_act")
        self.sparse = (norm in ("batch", "instance", "none", None)
                       and activation.lower() != "prelu")
        self.seed_generator = (keras.random.SeedGenerator(name=f"{self.name}_seed")
                               if use_bdo else None)

    def _kernel(self, name: str, channels_in: int, channels_out: int, norm: Any) -> tuple:
        kernel = self.add_weight(name=f"{name}_kernel",
                                 shape=(*self.kernel_shape, channels_in, channels_out),
                                 initializer=self.conv_kwargs["kernel_initializer"],
                                 regularizer=self.conv_kwargs["kernel_regularizer"])
        bias = None if norm is not None else self.add_weight(
            name=f"{name}_bias", shape=(channels_out,),
            initializer=self.conv_kwargs["bias_initializer"])
        if norm is not None:
            norm.build((None,) * (len(self.kernel_shape) + 1) + (channels_out,))
        return kernel, bias

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        c0, g = int(input_shape[-1]), self.growth
        n = len(self.dilations)
        widths = [c0 + i * g if self.dense else (c0 if i == 0 else g) for i in range(n)]
        self.units = [self._kernel(f"conv{i}", w, g, self.norms[i]) for i, w in enumerate(widths)]
        self.out_channels = c0 + n * g if self.dense else g
        self.skip = self._kernel("skip", self.out_channels, self.n_seg, self.skip_norm)
        if self.n_down is not None:
            self.down = self._kernel("down", self.out_channels, self.n_down, self.down_norm)

    def _conv(self, pieces: List[Any], weights: tuple, in_idx: Any = None, out_idx: Any = None,
              dilation: Any = 1, strides: Any = 1, remat: bool = False) -> Any:
        """Convolution of ``concat(pieces)``, kernel gathered on the channels present."""
        kernel, bias = weights

        def conv(*parts: Any) -> Any:
            x = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
            k = kernel if in_idx is None else ops.take(kernel, in_idx, axis=-2)
            k = k if out_idx is None else ops.take(k, out_idx, axis=-1)
            dtype = x.dtype
            if dtype == "bfloat16" and self._smaller_than_kernel(x.shape, dilation):
                x = ops.cast(x, "float32")   # TF's bfloat16 Conv3D filter gradient is wrong there
            y = ops.conv(x, ops.cast(k, x.dtype), strides=strides, padding="same",
                         dilation_rate=dilation)
            if bias is not None:
                y = y + ops.cast(bias if out_idx is None else ops.take(bias, out_idx), y.dtype)
            return ops.cast(y, dtype)
        return keras.remat(conv)(*pieces) if remat else conv(*pieces)

    def _smaller_than_kernel(self, shape: Sequence[Optional[int]], dilation: Any) -> bool:
        dilation = dilation if isinstance(dilation, tuple) else (dilation,) * len(self.kernel_shape)
        return any(n is not None and n < (k - 1) * d + 1
                   for n, k, d in zip(shape[1:-1], self.kernel_shape, dilation))

    def _sparse_norm(self, norm: Any, y: Any, idx: Any) -> Any:
        """Training-mode batch/instance norm of the channels ``idx`` only."""
        if norm is None:
            return y
        y32 = ops.cast(y, "float32")
        gamma, beta = ops.take(norm.gamma, idx), ops.take(norm.beta, idx)
        if isinstance(norm, keras.layers.BatchNormalization):
            mean, var = ops.moments(y32, axes=tuple(range(len(y.shape) - 1)))
            m = norm.momentum
            for stat, value in ((norm.moving_mean, mean), (norm.moving_variance, var)):
                new = ops.take(stat, idx) * m + value * (1.0 - m)
                stat.assign(ops.scatter_update(stat, ops.expand_dims(idx, -1), new))
        else:  # instance norm: GroupNormalization(groups=-1)
            mean, var = ops.moments(y32, axes=tuple(range(1, len(y.shape) - 1)), keepdims=True)
        out = (y32 - mean) * ops.rsqrt(var + norm.epsilon) * gamma + beta
        return ops.cast(out, y.dtype)

    def _stack(self, inputs: Any, training: bool) -> List[tuple]:
        """The stack's pieces as ``(tensor, channel indices or None, width)``."""
        drop = bool(training) and self.use_bdo
        pieces = [(inputs, None, int(inputs.shape[-1]))]
        for i, (weights, norm, act) in enumerate(zip(self.units, self.norms, self.acts)):
            inputs_i = pieces if self.dense else pieces[-1:]
            last = i == len(self.units) - 1
            keep = self.growth if last or not drop else max(1, round(self.keep_prob * self.growth))
            out_idx = None
            if keep < self.growth:
                order = keras.random.shuffle(ops.arange(self.growth, dtype="int32"),
                                             seed=self.seed_generator)
                out_idx = ops.sort(order[:keep])
            compact = out_idx is not None and self.sparse
            y = self._conv([p for p, _, _ in inputs_i], weights, self._present(inputs_i),
                           out_idx if compact else None, self.dilations[i],
                           remat=bool(training) and self.memory_efficient and len(inputs_i) > 1)
            if compact:
                y = act(self._sparse_norm(norm, y, out_idx))
            else:
                y = act(norm(y, training=training) if norm is not None else y)
                if out_idx is not None:  # mask fallback
                    mask = ops.sum(ops.one_hot(out_idx, self.growth, dtype=y.dtype), axis=0)
                    y = y * mask
            if out_idx is not None:
                y = y * ops.cast(self.growth / keep, y.dtype)
            pieces.append((y, out_idx if compact else None, self.growth))
        return pieces if self.dense else pieces[-1:]

    @staticmethod
    def _present(pieces: List[tuple]) -> Any:
        """Indices, in the full concatenation, of the channels the pieces hold (None: all)."""
        if all(idx is None for _, idx, _ in pieces):
            return None
        parts, offset = [], 0
        for _, idx, width in pieces:
            parts.append((ops.arange(width, dtype="int32") if idx is None else idx) + offset)
            offset += width
        return ops.concatenate(parts, axis=0)

    def _unit(self, pieces: List[tuple], weights: tuple, norm: Any, act: Any, training: Any,
              strides: Any = 1) -> Any:
        y = self._conv([p for p, _, _ in pieces], weights, self._present(pieces), strides=strides,
                       remat=bool(training) and self.memory_efficient)
        return act(norm(y, training=training) if norm is not None else y)

    def call(self, inputs: Any, training: Optional[bool] = None) -> tuple:
        pieces = self._stack(inputs, training)
        if len(pieces) > 1 and not (training and self.memory_efficient):   # skip and down share
            pieces = [(ops.concatenate([p for p, _, _ in pieces], axis=-1), self._present(pieces),
                       sum(width for _, _, width in pieces))]
        skip = self._unit(pieces, self.skip, self.skip_norm, self.skip_act, training)
        if self.n_down is None:
            return (skip,)
        stride = tuple(2 if k > 1 else 1 for k in self.kernel_shape)
        return skip, self._unit(pieces, self.down, self.down_norm, self.down_act, training, stride)

    def feature_stack(self, inputs: Any, training: Optional[bool] = None) -> Any:
        """The full-width feature stack (dropped channels as zeros), for inspection."""
        if not self.built:
            self.build(inputs.shape)
        full = []
        for tensor, idx, width in self._stack(inputs, training):
            full.append(tensor if idx is None else ops.matmul(
                tensor, ops.one_hot(idx, width, dtype=tensor.dtype)))
        return ops.concatenate(full, axis=-1) if len(full) > 1 else full[0]


class SpatialPrior(keras.layers.Layer):
    """Adds ``log(resize(prior))`` to the logits; ``prior`` is ``(p, p, p or 1, classes)``."""

    def __init__(self, prior_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prior_shape = tuple(int(s) for s in prior_shape)

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        self.prior = self.add_weight(name="prior", shape=self.prior_shape, initializer="ones",
                                     constraint=keras.constraints.NonNeg())

    def call(self, logits: Any) -> Any:
        prior = ops.expand_dims(ops.cast(self.prior, logits.dtype), 0)
        prior = linear_resize(prior, logits.shape[1:-1])
        return logits + ops.log(ops.maximum(prior, 1e-6))
