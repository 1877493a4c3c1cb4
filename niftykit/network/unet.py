"""3-D U-Net, with same- or valid-padded convolutions.

Çiçek et al., "3D U-Net: Learning Dense Volumetric Segmentation from Sparse
Annotation", MICCAI 2016 (arXiv:1606.06650): an encoder of convolution pairs
and 2× max-pooling, a decoder of 2× transposed convolutions concatenated with
the encoder's features at the same scale, and a 1×1×1 classifier.

``padding="same"`` (the default, so existing configs keep working) pads every
convolution: the output has the input's spatial size. ``padding="valid"`` is
the paper's network: each convolution shrinks the features, the encoder's
features are centre-cropped to the decoder's before concatenation
(crop-concat) and the output is smaller than the input (Çiçek's 132×132×116
window gives a 44×44×28 output). NiftyNet's ``unet`` emulated this with padded
convolutions and a 44-voxel crop of the output; here the convolutions are
really valid, so the output only sees context that is in the window.

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x', y', z',
num_classes)`` logits in float32 (also under mixed precision), where ``x'`` is
:meth:`UNet3D.output_size` of ``x`` (``x`` itself with same padding). With
``spatial_rank=2`` the kernels and poolings are ``(k, k, 1)``, for 2-D windows
stored as ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["UNet3D"]

PADDINGS = ("same", "valid")


def centre_crop(features: Any, reference: Any) -> Any:
    """``features`` cropped about its centre to the spatial size of ``reference``.

    Both are ``(batch, x, y, z, channels)``; the differences in size must be even
    (they are in a valid U-Net, whose poolings only take even sizes).
    """
    have, want = ops.shape(features), ops.shape(reference)
    if all(isinstance(have[i], int) and have[i] == want[i] for i in (1, 2, 3)):
        return features
    start = [0] + [(have[i] - want[i]) // 2 for i in (1, 2, 3)] + [0]
    return ops.slice(features, start, [have[0], want[1], want[2], want[3], have[4]])


@keras.saving.register_keras_serializable(package="niftykit")
class UNet3D(BaseNet):
    """3-D (or 2-D) U-Net.

    Args:
        num_classes: output channels (labels including background).
        n_features: filters per resolution level, shallowest first; the
            number of levels is ``len(n_features)``. The up-convolution into
            level ``i`` has ``n_features[i]`` filters.
        n_convs: convolutions per level and per path.
        kernel_size: convolution kernel size.
        norm: ``batch``, ``instance``, ``group`` or ``none``.
        padding: ``same`` (output size = input size; windows divisible by
            ``2 ** (len(n_features) - 1)``) or ``valid`` (Çiçek 2016 and
            NiftyNet; the accepted sizes and the output size are given by
            :meth:`output_size`).
        dropout: dropout rate on the deepest features, at the end of the
            contracting path (Ronneberger 2015); 0 leaves it out.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`
            (activation, spatial_rank, initialisers, decay, reg_type).

    Raises:
        ValueError: for an unknown ``padding`` or a negative ``dropout``.
    """

    def __init__(self, num_classes: int, n_features: Sequence[int] = (16, 32, 64),
                 n_convs: int = 2, kernel_size: int = 3, norm: str = "batch",
                 padding: str = "same", dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        padding = str(padding).lower()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be 'same' or 'valid', got '{padding}'")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_features = [int(f) for f in n_features]
        self.n_convs = int(n_convs)
        self.kernel_size = int(kernel_size)
        self.norm = norm
        self.padding = padding
        self.dropout = float(dropout)
        self._build_layers()

    # -- the window contract ---------------------------------------------------------
    @classmethod
    def _valid(cls, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` ask for valid padding (case-insensitive, like NiftyNet's VALID)."""
        return str(cls.setting(params, "padding")).lower() == "valid"

    @classmethod
    def _shrink(cls, params: Mapping[str, Any]) -> int:
        """Voxels lost along an axis by one level's convolutions (0 when same-padded)."""
        if not cls._valid(params):
            return 0
        return int(cls.setting(params, "n_convs")) * (int(cls.setting(params, "kernel_size")) - 1)

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Same padding: windows divisible by ``2 ** (levels - 1)``; valid: see :meth:`output_size`."""
        if cls._valid(params):
            return 1
        return 2 ** (len(cls.setting(params, "n_features")) - 1)

    @classmethod
    def output_size(cls, size: int, params: Mapping[str, Any]) -> Optional[int]:
        """Output size along one axis, or None if ``size`` cannot go through the network.

        Valid padding follows the size through the levels: each level's
        convolutions remove ``n_convs * (kernel_size - 1)`` voxels, each pooling
        needs an even size and halves it, each up-convolution doubles it. Çiçek's
        132 -> 44 and 116 -> 28 (four levels), Ronneberger's 572 -> 388 (five).
        """
        if not cls._valid(params):
            return super().output_size(size, params)
        shrink, levels = cls._shrink(params), len(cls.setting(params, "n_features"))
        size = int(size)
        for _ in range(levels - 1):
            size -= shrink
            if size <= 0 or size % 2:
                return None
            size //= 2
        size -= shrink
        for _ in range(levels - 1):
            if size <= 0:
                return None
            size = 2 * size - shrink
        return size if size > 0 else None

    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        """The smallest accepted window size along an axis."""
        if not cls._valid(params):
            return super().window_minimum(params)
        return next(s for s in range(2, 1 << 20) if cls.output_size(s, params) is not None)

    @classmethod
    def window_rule(cls, params: Mapping[str, Any]) -> str:
        """The accepted sizes in words; for valid padding, ``offset + step * k``."""
        if not cls._valid(params):
            return super().window_rule(params)
        levels, shrink = len(cls.setting(params, "n_features")), cls._shrink(params)
        step, offset = 2 ** (levels - 1), shrink * (2 ** levels - 1)
        minimum = cls.window_minimum(params)
        rule = (f"with (size - {offset}) divisible by {step}" if offset else f"divisible by {step}"
                ) if step > 1 else "of any size"
        return (f"{rule}, at least {minimum} (valid convolutions: the output is "
                f"{minimum - cls.output_size(minimum, params)} voxels smaller than the window)")

    # -- layers ----------------------------------------------------------------------
    def _block(self, filters: int, prefix: str) -> list:
        layers = []
        for i in range(self.n_convs):
            layers.append(keras.layers.Conv3D(filters, self.kernel(self.kernel_size),
                                              padding=self.padding, name=f"{prefix}_conv{i}",
                                              **self.conv_kwargs()))
            norm = norm_layer(self.norm, filters, f"{prefix}_norm{i}")
            if norm is not None:
                layers.append(norm)
            layers.append(activation_layer(self.activation, f"{prefix}_act{i}"))
        return layers

    def _build_layers(self) -> None:
        pool = self.kernel(2)
        levels = len(self.n_features)
        self.down_blocks = [self._block(f, f"down{i}") for i, f in enumerate(self.n_features)]
        if self.dropout > 0:
            self.down_blocks[-1].append(keras.layers.Dropout(self.dropout, name="bottom_dropout"))
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
            x = up(x)
            x = self._run(block, concat([x, centre_crop(skip, x)]), training)
        return self.classifier(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features), n_convs=self.n_convs,
                      kernel_size=self.kernel_size, norm=self.norm, padding=self.padding,
                      dropout=self.dropout)
        return config
