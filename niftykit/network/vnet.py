"""V-Net of Milletari et al.

Milletari, Navab and Ahmadi, "V-Net: Fully Convolutional Neural Networks for
Volumetric Medical Image Segmentation", 3DV 2016 (arXiv:1606.04797). Each
level is a residual stage: one to three padded 5×5×5 convolutions whose
output is added to the stage's input. The encoder halves the resolution with
strided 2×2×2 convolutions that double the channels (16 -> 256 over five
levels); the decoder doubles it with 2×2×2 transposed convolutions, and
concatenates the encoder's features at the same scale, so that decoder
stages are twice as wide as encoder stages (256, 128, 64, 32, as in the
paper's figure 1). PReLU activations, a 1×1×1 classifier.

The first stage's residual is the input repeated along channels to
``n_features[0]`` (the paper's single-channel input broadcast to 16
channels; NiftyNet tiled it the same way). Following the paper there is no
normalisation by default (NiftyNet had none either); ``norm`` adds one after
every convolution. NiftyNet passed the logits through a final activation and
checked windows for divisibility by 8 only; here the classifier is linear and
windows must be divisible by ``2 ** (levels - 1)`` (16 for five levels).

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x, y, z,
num_classes)`` float32 logits. ``spatial_rank=2`` uses ``(5, 5, 1)`` kernels
on ``(x, y, 1)`` windows.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["VNet"]


@keras.saving.register_keras_serializable(package="niftykit")
class VNet(BaseNet):
    """V-Net (Milletari 2016).

    Args:
        num_classes: output channels.
        n_features: encoder filters per level, shallowest first (paper: 16 ... 256).
        n_convs: convolutions of the residual stage per level, used by the
            encoder and the decoder alike (paper: 1, 2, 3, 3, 3).
        kernel_size: convolution kernel size (paper: 5).
        norm: ``none`` (paper), ``batch``, ``instance`` or ``group``.
        activation: PReLU by default (paper), any BaseNet activation.
        **kwargs: the other common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: if ``n_convs`` and ``n_features`` differ in length or a stage has no convolution.
    """

    def __init__(self, num_classes: int, n_features: Sequence[int] = (16, 32, 64, 128, 256),
                 n_convs: Sequence[int] = (1, 2, 3, 3, 3), kernel_size: int = 5,
                 norm: str = "none", activation: str = "prelu", **kwargs: Any) -> None:
        super().__init__(num_classes, activation=activation, **kwargs)
        if len(n_convs) != len(n_features) or min(n_convs) < 1:
            raise ValueError(f"vnet needs one positive n_convs per level: n_features={list(n_features)}, "
                             f"n_convs={list(n_convs)}")
        self.n_features = [int(f) for f in n_features]
        self.n_convs = [int(n) for n in n_convs]
        self.kernel_size = int(kernel_size)
        self.norm = norm
        self._build_layers()

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Windows divisible by ``2 ** (levels - 1)`` (16 for five levels)."""
        return 2 ** (len(cls.setting(params, "n_features")) - 1)

    def _unit(self, layer: keras.layers.Layer, filters: int, prefix: str, act: bool = True) -> list:
        """``layer``, then normalisation, then (unless ``act`` is False) the activation."""
        norm = norm_layer(self.norm, filters, f"{prefix}_norm")
        return [layer] + ([norm] if norm is not None else []) + (
            [activation_layer(self.activation, f"{prefix}_act")] if act else [])

    def _stage(self, filters: int, n_convs: int, prefix: str) -> list:
        """The residual stage's convolutions; the last one is activated after the sum."""
        return [self._unit(keras.layers.Conv3D(filters, self.kernel(self.kernel_size), padding="same",
                                               name=f"{prefix}_conv{i}", **self.conv_kwargs()),
                           filters, f"{prefix}_conv{i}", act=i < n_convs - 1)
                for i in range(n_convs)]

    def _build_layers(self) -> None:
        f, levels, step = self.n_features, len(self.n_features), self.kernel(2)
        self.down_stages = [self._stage(f[i], self.n_convs[i], f"down{i}") for i in range(levels)]
        self.down_adds = [keras.layers.Add(name=f"down{i}_add") for i in range(levels)]
        self.down_acts = [activation_layer(self.activation, f"down{i}_add_act") for i in range(levels)]
        self.downs = [self._unit(keras.layers.Conv3D(f[i + 1], step, strides=step,
                                                     name=f"down{i}_downconv", **self.conv_kwargs()),
                                 f[i + 1], f"down{i}_downconv") for i in range(levels - 1)]
        rev = list(reversed(range(levels - 1)))
        self.ups = [self._unit(keras.layers.Conv3DTranspose(f[i], step, strides=step,
                                                            name=f"up{i}_deconv", **self.conv_kwargs()),
                               f[i], f"up{i}_deconv") for i in rev]
        self.concats = [keras.layers.Concatenate(axis=-1, name=f"up{i}_concat") for i in rev]
        self.up_stages = [self._stage(2 * f[i], self.n_convs[i], f"up{i}") for i in rev]
        self.up_adds = [keras.layers.Add(name=f"up{i}_add") for i in rev]
        self.up_acts = [activation_layer(self.activation, f"up{i}_add_act") for i in rev]
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    @staticmethod
    def _run(layers: list, x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) else layer(x)
        return x

    def _residual(self, stage: list, add: Any, act: Any, x: Any, shortcut: Any,
                  training: Optional[bool]) -> Any:
        y = x
        for unit in stage:
            y = self._run(unit, y, training)
        return act(add([y, shortcut]))

    def _repeat_channels(self, inputs: Any) -> Any:
        """The input repeated along channels to ``n_features[0]`` channels (first residual)."""
        channels, width = inputs.shape[-1], self.n_features[0]
        return ops.tile(inputs, [1, 1, 1, 1, -(-width // channels)])[..., :width]

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        skips = []
        x = self._residual(self.down_stages[0], self.down_adds[0], self.down_acts[0], inputs,
                           self._repeat_channels(inputs), training)
        for i, down in enumerate(self.downs, start=1):
            skips.append(x)
            x = self._run(down, x, training)
            x = self._residual(self.down_stages[i], self.down_adds[i], self.down_acts[i], x, x,
                               training)
        for up, concat, stage, add, act, skip in zip(self.ups, self.concats, self.up_stages,
                                                     self.up_adds, self.up_acts, reversed(skips)):
            x = concat([self._run(up, x, training), skip])
            x = self._residual(stage, add, act, x, x, training)
        return self.classifier(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features), n_convs=list(self.n_convs),
                      kernel_size=self.kernel_size, norm=self.norm)
        return config
