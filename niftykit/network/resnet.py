"""Pre-activation ResNet classifiers, with optional squeeze-and-excitation.

He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
(arXiv:1603.05027): residual units whose branch is norm -> activation ->
convolution (pre-activation), so the identity path stays clean. A
projection (1×1×1, strided) replaces the identity where a unit changes the
channel count or the resolution; it reads the unit's pre-activated input, as
in the paper and NiftyNet.

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507):
each unit's residual branch is rescaled channel-wise, before the addition,
by a gate ``sigmoid(W2 act(W1 mean(x)))`` with ``W1`` reducing the channels
by ``reduction_ratio``.

Layout (NiftyNet's ``resnet``/``se_resnet``): a 3×3×3 convolution to
``n_features[0]`` channels, then one stage per further entry of
``n_features``: the first at stride 1, every later one halving the
resolution in its first unit; then norm -> activation -> global average
pooling -> ``Dense(num_classes)``.

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, num_classes)``
logits in float32 (also under mixed precision). With ``spatial_rank=2`` the
kernels and strides are ``(k, k, 1)``, for 2-D windows stored as ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["ResNet", "SEResNet"]

BLOCKS = ("bottleneck", "basic")


@keras.saving.register_keras_serializable(package="niftykit")
class ResNet(BaseNet):
    """Pre-activation ResNet classifier (He et al. 2016), 3-D or 2-D.

    Args:
        num_classes: outputs (classes, or regression targets).
        n_features: channels of the first convolution, then of each stage;
            the stages after the first halve the resolution, so windows must
            be divisible by ``2 ** (len(n_features) - 2)``.
        n_blocks_per_resolution: residual units per stage.
        block: ``bottleneck`` (1×1×1 -> k×k×k -> 1×1×1 at a quarter of the
            stage's channels, NiftyNet's choice) or ``basic`` (two k×k×k).
        kernel_size: size of the spatial convolutions.
        norm: ``batch``, ``instance``, ``group`` or ``none``.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`
            (activation, spatial_rank, initialisers, decay, reg_type).

    The stride of a downsampling bottleneck sits on its k×k×k convolution
    (as in torchvision's "ResNet v1.5"), not on the first 1×1×1 as in
    NiftyNet, so that no voxel is skipped by the residual branch.
    """

    output_kind = "vector"
    default_features = (16, 64, 128, 256)
    default_blocks = 10
    #: whether every unit has a squeeze-and-excitation gate (:class:`SEResNet`)
    squeeze_excitation = False

    def __init__(self, num_classes: int, n_features: Sequence[int] = default_features,
                 n_blocks_per_resolution: int = default_blocks, block: str = "bottleneck",
                 kernel_size: int = 3, norm: str = "batch", **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.n_features = [int(f) for f in n_features]
        self.n_blocks_per_resolution = int(n_blocks_per_resolution)
        self.block = block
        self.kernel_size = int(kernel_size)
        self.norm = norm
        if len(self.n_features) < 2:
            raise ValueError(f"n_features needs at least two entries (first convolution and "
                             f"one stage), got {self.n_features}")
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block '{block}' (available: {', '.join(BLOCKS)})")
        if self.n_blocks_per_resolution < 1:
            raise ValueError(f"n_blocks_per_resolution must be at least 1, "
                             f"got {n_blocks_per_resolution}")
        self._build_layers()

    # -- the window contract -----------------------------------------------------------
    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """2 to the number of strided stages (all stages but the first)."""
        return 2 ** max(0, len(params.get("n_features", cls.default_features)) - 2)

    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        """Twice the divisor: the deepest stage still sees two voxels per axis."""
        return 2 * cls.window_divisor(params)

    # -- layers --------------------------------------------------------------------------
    def _conv(self, filters: int, size: int, name: str, stride: int = 1) -> keras.layers.Layer:
        bias = self.norm in (None, "none")  # a following normalisation cancels biases
        return keras.layers.Conv3D(filters, self.kernel(size), strides=self.kernel(stride),
                                   padding="same", use_bias=bias, name=name,
                                   **self.conv_kwargs(bias=bias))

    def _norm_act(self, channels: int, prefix: str) -> List[keras.layers.Layer]:
        norm = norm_layer(self.norm, channels, f"{prefix}_norm")
        act = activation_layer(self.activation, f"{prefix}_act")
        return [act] if norm is None else [norm, act]

    def _squeeze_excitation(self, channels: int, prefix: str) -> List[keras.layers.Layer]:
        """Squeeze, reduce, activate, gate (sigmoid), rescale; empty for a plain ResNet."""
        if not self.squeeze_excitation:
            return []
        reduced = max(1, channels // self.reduction_ratio)
        return [keras.layers.GlobalAveragePooling3D(keepdims=True, name=f"{prefix}_se_squeeze"),
                keras.layers.Conv3D(reduced, 1, name=f"{prefix}_se_reduce", **self.conv_kwargs()),
                activation_layer(self.activation, f"{prefix}_se_act"),
                keras.layers.Conv3D(channels, 1, activation="sigmoid", name=f"{prefix}_se_gate",
                                    **self.conv_kwargs()),
                keras.layers.Multiply(name=f"{prefix}_se_scale")]

    def _unit(self, prefix: str, in_channels: int, out_channels: int,
              stride: int) -> Dict[str, Any]:
        """The layers of one pre-activation residual unit."""
        k = self.kernel_size
        if self.block == "bottleneck":
            mid = max(1, out_channels // 4)
            shapes = [(mid, 1, 1), (mid, k, stride), (out_channels, 1, 1)]
        else:
            shapes = [(out_channels, k, stride), (out_channels, k, 1)]
        branch: List[keras.layers.Layer] = []
        for i, (filters, size, conv_stride) in enumerate(shapes):
            if i:
                branch += self._norm_act(shapes[i - 1][0], f"{prefix}_{i}")
            branch.append(self._conv(filters, size, f"{prefix}_conv{i}", conv_stride))
        unit: Dict[str, Any] = dict(pre=self._norm_act(in_channels, f"{prefix}_pre"),
                                    branch=branch,
                                    se=self._squeeze_excitation(out_channels, prefix),
                                    add=keras.layers.Add(name=f"{prefix}_add"))
        if in_channels != out_channels or stride > 1:
            unit["shortcut"] = self._conv(out_channels, 1, f"{prefix}_shortcut", stride)
        return unit

    def _build_layers(self) -> None:
        self.conv_in = self._conv(self.n_features[0], self.kernel_size, "conv_in")
        self.units = []
        channels = self.n_features[0]
        for stage, filters in enumerate(self.n_features[1:]):
            for b in range(self.n_blocks_per_resolution):
                stride = 2 if stage > 0 and b == 0 else 1
                self.units.append(self._unit(f"stage{stage}_unit{b}", channels, filters, stride))
                channels = filters
        self.final = self._norm_act(channels, "final")
        self.pool = keras.layers.GlobalAveragePooling3D(name="pool")
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier", dtype="float32",
                                             **self.conv_kwargs())

    # -- forward -------------------------------------------------------------------------
    @staticmethod
    def _run(layers: Sequence[keras.layers.Layer], x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) else layer(x)
        return x

    @staticmethod
    def _excite(se: Sequence[keras.layers.Layer], x: Any) -> Any:
        if not se:
            return x
        squeeze, reduce, act, gate, scale = se
        return scale([x, gate(act(reduce(squeeze(x))))])

    def _run_unit(self, unit: Mapping[str, Any], x: Any, training: Optional[bool]) -> Any:
        pre = self._run(unit["pre"], x, training)
        shortcut = unit["shortcut"](pre) if "shortcut" in unit else x
        branch = self._excite(unit["se"], self._run(unit["branch"], pre, training))
        return unit["add"]([shortcut, branch])

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = self.conv_in(inputs)
        for unit in self.units:
            x = self._run_unit(unit, x, training)
        x = self.pool(self._run(self.final, x, training))
        return self.classifier(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features),
                      n_blocks_per_resolution=self.n_blocks_per_resolution, block=self.block,
                      kernel_size=self.kernel_size, norm=self.norm)
        return config


@keras.saving.register_keras_serializable(package="niftykit")
class SEResNet(ResNet):
    """Pre-activation ResNet with squeeze-and-excitation units (Hu et al. 2018).

    Defaults follow NiftyNet's ``se_resnet``: ``n_features=(16, 64, 128)``, one
    unit per stage.

    Args:
        num_classes: outputs.
        n_features, n_blocks_per_resolution, block, kernel_size, norm: as :class:`ResNet`.
        reduction_ratio: the gate's hidden layer has ``channels // reduction_ratio``
            channels (at least one); 16 in Hu et al. and NiftyNet.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.
    """

    default_features = (16, 64, 128)
    default_blocks = 1
    squeeze_excitation = True

    def __init__(self, num_classes: int, n_features: Sequence[int] = default_features,
                 n_blocks_per_resolution: int = default_blocks, reduction_ratio: int = 16,
                 **kwargs: Any) -> None:
        self.reduction_ratio = int(reduction_ratio)
        if self.reduction_ratio < 1:
            raise ValueError(f"reduction_ratio must be at least 1, got {reduction_ratio}")
        super().__init__(num_classes, n_features=n_features,
                         n_blocks_per_resolution=n_blocks_per_resolution, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio)
        return config
