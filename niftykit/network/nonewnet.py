"""No New-Net: the 3-D U-Net of Isensee et al. for BraTS 2018.

Isensee, Kickingereder, Wick, Bendszus and Maier-Hein, "No New-Net",
MICCAI BrainLes workshop 2018 (arXiv:1809.10483). A plain 3-D U-Net with:
padded 3×3×3 convolutions (output size = input size), instance normalisation,
leaky ReLU (negative slope 0.01), 2× max-pooling, trilinear upsampling instead
of transposed convolutions, and fewer filters before each upsampling (the
convolution pair of a decoder level ends with the next level's width). 30
filters at full resolution doubling to 480 at the fifth level, as in the
paper and NiftyNet's ``no_new_net.py``.

Optional deep supervision follows Isensee et al., "Brain Tumor Segmentation
and Radiomics Survival Prediction", BraTS 2017 (arXiv:1802.10508): 1×1×1
segmentation layers on the coarser decoder levels, upsampled and summed into
the final logits, so the network still has one output.

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x, y, z,
num_classes)`` float32 logits; windows divisible by ``2 ** (len(n_features) - 1)``
(16 for the default five levels).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["NoNewNet", "LinearUpsampling"]


def _upsample_axis(x: Any, axis: int) -> Any:
    """2× linear interpolation along ``axis`` with half-voxel centres (edges clamped)."""
    def part(start: Optional[int], stop: Optional[int]) -> Any:
        return x[(slice(None),) * axis + (slice(start, stop),)]

    before = ops.concatenate([part(0, 1), part(None, -1)], axis=axis)
    after = ops.concatenate([part(1, None), part(-1, None)], axis=axis)
    even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
    pairs = ops.stack([even, odd], axis=axis + 1)
    shape = list(ops.shape(x))
    shape[0], shape[axis] = -1, 2 * shape[axis]
    return ops.reshape(pairs, shape)


@keras.saving.register_keras_serializable(package="niftykit")
class LinearUpsampling(keras.layers.Layer):
    """2× trilinear (bilinear for ``spatial_rank=2``) upsampling, no weights.

    Samples at half-voxel centres like ``tf.image.resize(method="bilinear")``
    (NiftyNet's ``LinearResizeLayer``). ``(batch, x, y, z, c)`` ->
    ``(batch, 2x, 2y, 2z, c)``, or ``(batch, 2x, 2y, z, c)`` in 2-D.

    Args:
        spatial_rank: 3, or 2 to leave z alone.
    """

    def __init__(self, spatial_rank: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spatial_rank = int(spatial_rank)

    def call(self, inputs: Any) -> Any:
        x = inputs
        for axis in range(1, self.spatial_rank + 1):
            x = _upsample_axis(x, axis)
        return x

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]) -> tuple:
        shape = list(input_shape)
        for axis in range(1, self.spatial_rank + 1):
            shape[axis] = None if shape[axis] is None else 2 * shape[axis]
        return tuple(shape)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(spatial_rank=self.spatial_rank)
        return config


@keras.saving.register_keras_serializable(package="niftykit")
class NoNewNet(BaseNet):
    """No New-Net (Isensee 2018).

    Args:
        num_classes: output channels.
        n_features: filters per level, shallowest first (paper: 30, 60, 120,
            240, 480); at least two levels.
        norm: ``instance`` (paper), ``batch``, ``group`` or ``none``.
        deep_supervision: sum upsampled 1×1×1 segmentations of the coarser
            decoder levels into the output (Isensee 2017); off by default.
        activation: leaky ReLU by default (slope 0.01), any BaseNet activation.
        **kwargs: the other common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: with fewer than two levels.
    """

    def __init__(self, num_classes: int, n_features: Sequence[int] = (30, 60, 120, 240, 480),
                 norm: str = "instance", deep_supervision: bool = False,
                 activation: str = "leakyrelu", **kwargs: Any) -> None:
        super().__init__(num_classes, activation=activation, **kwargs)
        if len(n_features) < 2:
            raise ValueError(f"nonewnet needs at least two levels, got n_features={n_features}")
        self.n_features = [int(f) for f in n_features]
        self.norm = norm
        self.deep_supervision = bool(deep_supervision)
        self._build_layers()

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Windows divisible by ``2 ** (levels - 1)`` (16 for five levels)."""
        return 2 ** (len(cls.setting(params, "n_features")) - 1)

    def _block(self, widths: Sequence[int], prefix: str) -> list:
        layers = []
        for i, filters in enumerate(widths):
            layers.append(keras.layers.Conv3D(filters, self.kernel(3), padding="same",
                                              name=f"{prefix}_conv{i}", **self.conv_kwargs()))
            norm = norm_layer(self.norm, filters, f"{prefix}_norm{i}")
            if norm is not None:
                layers.append(norm)
            layers.append(activation_layer(self.activation, f"{prefix}_act{i}"))
        return layers

    def _build_layers(self) -> None:
        f, last = self.n_features, len(self.n_features) - 1
        self.down_blocks = [self._block((f[i], f[i]), f"down{i}") for i in range(last)]
        self.pools = [keras.layers.MaxPooling3D(self.kernel(2), name=f"pool{i}")
                      for i in range(last)]
        self.bottom = self._block((f[last], f[last - 1]), "bottom")
        self.ups, self.concats, self.up_blocks = [], [], []
        for i in reversed(range(last)):
            self.ups.append(LinearUpsampling(self.spatial_rank, name=f"up{i}_resize"))
            self.concats.append(keras.layers.Concatenate(axis=-1, name=f"up{i}_concat"))
            self.up_blocks.append(self._block((f[i], f[i - 1] if i else f[0]), f"up{i}"))
        self.segments, self.segment_ups, self.sums = [], [], []
        if self.deep_supervision:  # a segmentation per decoder level but the last
            coarse = list(reversed(range(1, last)))
            self.segments = [keras.layers.Conv3D(self.num_classes, 1, name=f"up{i}_segment",
                                                 dtype="float32", **self.conv_kwargs())
                             for i in coarse]
            self.segment_ups = [LinearUpsampling(self.spatial_rank, name=f"up{i}_segment_resize",
                                                 dtype="float32") for i in coarse]
            self.sums = [keras.layers.Add(name=f"up{i}_segment_sum", dtype="float32")
                         for i in reversed(range(last - 1))]
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    @staticmethod
    def _run(layers: list, x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) else layer(x)
        return x

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        skips, x = [], inputs
        for block, pool in zip(self.down_blocks, self.pools):
            x = self._run(block, x, training)
            skips.append(x)
            x = pool(x)
        x = self._run(self.bottom, x, training)
        segment = None
        for level, (up, concat, block, skip) in enumerate(
                zip(self.ups, self.concats, self.up_blocks, reversed(skips))):
            x = self._run(block, concat([skip, up(x)]), training)
            if level < len(self.segments):
                current = self.segments[level](x)
                if segment is not None:
                    current = self.sums[level - 1]([current, segment])
                segment = self.segment_ups[level](current)
        logits = self.classifier(x)
        return logits if segment is None else self.sums[-1]([logits, segment])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features), norm=self.norm,
                      deep_supervision=self.deep_supervision)
        return config
