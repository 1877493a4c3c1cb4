"""3-D U-Net with same-padded convolutions.

Çiçek et al., "3D U-Net: Learning Dense Volumetric Segmentation from Sparse
Annotation", MICCAI 2016 (arXiv:1606.06650): an encoder of convolution pairs
and 2× max-pooling, a decoder of 2× transposed convolutions concatenated with
the encoder's features at the same scale, and a 1×1×1 classifier. This
version pads its convolutions ("same"), so the output has the input's spatial
size; the valid-padding variant comes with the network layer proper.

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x, y, z,
num_classes)`` logits in float32 (also under mixed precision). With
``spatial_rank=2`` the kernels and poolings are ``(k, k, 1)``, for 2-D windows
stored as ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["UNet3D"]


@keras.saving.register_keras_serializable(package="niftykit")
class UNet3D(BaseNet):
    """3-D (or 2-D) U-Net.

    Args:
        num_classes: output channels (labels including background).
        n_features: filters per resolution level, shallowest first; the
            number of levels is ``len(n_features)`` and windows must be
            divisible by ``2 ** (len(n_features) - 1)``.
        n_convs: convolutions per level and per path.
        kernel_size: convolution kernel size.
        norm: ``batch``, ``instance``, ``group`` or ``none``.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`
            (activation, spatial_rank, initialisers, decay, reg_type).
    """

    def __init__(self, num_classes: int, n_features: Sequence[int] = (16, 32, 64),
                 n_convs: int = 2, kernel_size: int = 3, norm: str = "batch",
                 **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.n_features = [int(f) for f in n_features]
        self.n_convs = int(n_convs)
        self.kernel_size = int(kernel_size)
        self.norm = norm
        self._build_layers()

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Windows must be divisible by this along every axis longer than 1."""
        return 2 ** (len(params.get("n_features", (16, 32, 64))) - 1)

    def _block(self, filters: int, prefix: str) -> list:
        layers = []
        for i in range(self.n_convs):
            layers.append(keras.layers.Conv3D(filters, self.kernel(self.kernel_size), padding="same",
                                              name=f"{prefix}_conv{i}", **self.conv_kwargs()))
            norm = norm_layer(self.norm, filters, f"{prefix}_norm{i}")
            if norm is not None:
                layers.append(norm)
            layers.append(activation_layer(self.activation, f"{prefix}_act{i}"))
        return layers

    def _build_layers(self) -> None:
        pool = self.kernel(2)
        levels = len(self.n_features)
        self.down_blocks = [self._block(f, f"down{i}") for i, f in enumerate(self.n_features)]
        self.pools = [keras.layers.MaxPooling3D(pool, name=f"pool{i}") for i in range(levels - 1)]
        self.ups, self.concats, self.up_blocks = [], [], []
        for i in reversed(range(levels - 1)):
            f = self.n_features[i]
            self.ups.append(keras.layers.Conv3DTranspose(
                f, pool, strides=pool, name=f"up{i}_deconv", **self.conv_kwargs()))
            self.concats.append(keras.layers.Concatenate(axis=-1, name=f"up{i}_concat"))
            self.up_blocks.append(self._block(f, f"up{i}"))
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    @staticmethod
    def _run(layers: list, x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) else layer(x)
        return x

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        skips = []
        x = inputs
        for i, block in enumerate(self.down_blocks):
            x = self._run(block, x, training)
            if i < len(self.pools):
                skips.append(x)
                x = self.pools[i](x)
        for up, concat, block, skip in zip(self.ups, self.concats, self.up_blocks, reversed(skips)):
            x = self._run(block, concat([up(x), skip]), training)
        return self.classifier(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features), n_convs=self.n_convs,
                      kernel_size=self.kernel_size, norm=self.norm)
        return config
