"""HighRes3DNet: dilated residual convolutions at full resolution.

Li et al., "On the compactness, efficiency, and representation of 3D
convolutional networks: brain parcellation as a pretext task", IPMI 2017
(arXiv:1707.01992). A 3×3×3 convolution (16 channels), then residual blocks
of two pre-activation norm → activation → 3×3×3 convolution units: three
blocks of 16 channels with dilation 1, three of 32 with dilation 2, three of
64 with dilation 4, then a 1×1×1 convolution (80 channels) and the 1×1×1
classifier. Padding is "same", so the output has the input's size. Where a
block widens the features, the shortcut is zero-padded along the channels
(half the new channels on each side, as NiftyNet's ``ElementwiseLayer``);
where it narrows them, a 1×1×1 projection is used. The paper reports about
0.81 M parameters; with one input channel this implementation has
``808,784 + 81 · num_classes`` trainable parameters (807,344 convolution
weights, 1,440 normalisation scales and offsets, the classifier).

NiftyNet's variants (``niftynet/network/highres3dnet_small.py`` and
``highres3dnet_large.py``) share the trunk:

* :class:`HighRes3DNetSmall` starts with a stride-2 convolution, runs the
  blocks at half resolution, widens the head convolution to 3×3×3 and goes
  back to full resolution with a 3×3×3 stride-2 transposed convolution.
* :class:`HighRes3DNetLarge` has a 3×3×3 and a 1×1×1 head convolution of 64
  channels and dropout (rate 0.5, NiftyNet's ``keep_prob=0.5``) before the
  classifier.

Window sizes: NiftyNet asserted every window axis divisible by 8 for all
three. Its dilated blocks were built with ``tf.space_to_batch_nd`` without
padding (``DilatedTensor``), which needs axes divisible by the dilation
factor, 4; 8 is what the small variant needs (stride 2 × dilation 4), and
the rule was copied to the other two. Keras' dilated convolutions pad
themselves and give the same values as NiftyNet's sub-grid convolutions on
those sizes (``tests/network/test_highres3dnet.py`` checks it), so here
HighRes3DNet and HighRes3DNetLarge take any window size and
HighRes3DNetSmall any even size (its stride 2 and ×2 upsampling).

Other differences from NiftyNet: the classifier has a bias and no batch
normalisation (NiftyNet normalised the logits), and the activation defaults
to ReLU as in the paper (NiftyNet's class default was PReLU, its config's
``activation_function`` ReLU).

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x, y, z,
num_classes)`` logits in float32. With ``spatial_rank=2`` kernels, dilations
and strides are ``(k, k, 1)`` for windows ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer, norm_layer

__all__ = ["HighRes3DNet", "HighRes3DNetSmall", "HighRes3DNetLarge"]

_STATEFUL = (keras.layers.BatchNormalization, keras.layers.Dropout)


def _per_stage(value: Union[int, Sequence[int]], stages: int, what: str) -> List[int]:
    values = [int(value)] * stages if isinstance(value, int) else [int(v) for v in value]
    if len(values) != stages:
        raise ValueError(f"{what} has {len(values)} entries for {stages} stages (n_features)")
    return values


@keras.saving.register_keras_serializable(package="niftykit")
class HighRes3DNet(BaseNet):
    """HighRes3DNet (Li et al., IPMI 2017).

    Args:
        num_classes: output channels (labels including background).
        first_features: channels of the first 3×3×3 convolution.
        n_features: channels of each stage of residual blocks.
        n_blocks: residual blocks per stage (one number for all stages, or one per stage).
        dilations: dilation rate of each stage's convolutions.
        head_features: channels of the convolutions after the blocks.
        head_kernels: their kernel sizes (one per entry of ``head_features``).
        dropout_rate: dropout before the classifier; 0 leaves it out.
        kernel_size: kernel size of the first and the residual convolutions.
        norm: ``batch``, ``instance``, ``group`` or ``none`` (convolutions
            followed by a normalisation have no bias).
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`
            (activation, spatial_rank, initialisers, decay, reg_type).

    Raises:
        ValueError: if the per-stage or head lists differ in length.
    """

    #: stride of the first convolution (and factor of the final upsampling)
    first_stride = 1

    def __init__(self, num_classes: int, first_features: int = 16,
                 n_features: Sequence[int] = (16, 32, 64), n_blocks: Union[int, Sequence[int]] = 3,
                 dilations: Sequence[int] = (1, 2, 4), head_features: Sequence[int] = (80,),
                 head_kernels: Sequence[int] = (1,), dropout_rate: float = 0.0,
                 kernel_size: int = 3, norm: str = "batch", **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.first_features = int(first_features)
        self.n_features = [int(f) for f in n_features]
        self.n_blocks = _per_stage(n_blocks, len(self.n_features), "n_blocks")
        self.dilations = _per_stage(list(dilations), len(self.n_features), "dilations")
        self.head_features = [int(f) for f in head_features]
        self.head_kernels = [int(k) for k in head_kernels]
        if len(self.head_kernels) != len(self.head_features):
            raise ValueError(f"head_kernels {self.head_kernels} needs one kernel size per "
                             f"entry of head_features {self.head_features}")
        self.dropout_rate = float(dropout_rate)
        self.kernel_size = int(kernel_size)
        self.norm = norm
        self._build_layers()

    # -- window contract --------------------------------------------------------------
    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """1: same-padded dilated convolutions take any size (NiftyNet asked for 8)."""
        return cls.first_stride

    # -- layers -----------------------------------------------------------------------
    def _unit(self, filters: int, kernel: int, prefix: str, stride: int = 1,
              transpose: bool = False) -> list:
        """Convolution → norm → activation (NiftyNet's ConvolutionalLayer order)."""
        norm = norm_layer(self.norm, filters, f"{prefix}_norm")
        conv_class = keras.layers.Conv3DTranspose if transpose else keras.layers.Conv3D
        conv = conv_class(filters, self.kernel(kernel), strides=self.kernel(stride), padding="same",
                          use_bias=norm is None, name=f"{prefix}_conv",
                          **self.conv_kwargs(bias=norm is None))
        return [layer for layer in (conv, norm, activation_layer(self.activation, f"{prefix}_act"))
                if layer is not None]

    def _residual_block(self, in_features: int, filters: int, dilation: int, prefix: str) -> dict:
        """Two pre-activation units (norm → activation → dilated convolution) and a shortcut."""
        units, channels, bias = [], in_features, self.norm in (None, "none")
        for i in range(2):
            units += [layer for layer in (norm_layer(self.norm, channels, f"{prefix}_norm{i}"),
                                          activation_layer(self.activation, f"{prefix}_act{i}"))
                      if layer is not None]
            units.append(keras.layers.Conv3D(
                filters, self.kernel(self.kernel_size), padding="same",
                dilation_rate=self.kernel(dilation), use_bias=bias, name=f"{prefix}_conv{i}",
                **self.conv_kwargs(bias=bias)))
            channels = filters
        projection = None
        if in_features > filters:  # NiftyNet projects a narrowing shortcut
            projection = keras.layers.Conv3D(filters, 1, use_bias=False, name=f"{prefix}_proj",
                                             **self.conv_kwargs(bias=False))
        return dict(units=units, projection=projection, add=keras.layers.Add(name=f"{prefix}_add"),
                    pad=max(0, filters - in_features))

    def _build_layers(self) -> None:
        self.first = self._unit(self.first_features, self.kernel_size, "conv0",
                                stride=self.first_stride)
        self.blocks, channels = [], self.first_features
        for stage, (filters, repeat, dilation) in enumerate(
                zip(self.n_features, self.n_blocks, self.dilations), start=1):
            for b in range(repeat):
                self.blocks.append(self._residual_block(channels, filters, dilation,
                                                        f"res{stage}_{b}"))
                channels = filters
        self.head = []
        for i, (filters, kernel) in enumerate(zip(self.head_features, self.head_kernels), start=1):
            self.head += self._unit(filters, kernel, f"conv{i}")
            channels = filters
        self.upsample = []
        if self.first_stride > 1:
            self.upsample = self._unit(channels, 3, "deconv", stride=self.first_stride,
                                       transpose=True)
        self.dropout = (keras.layers.Dropout(self.dropout_rate, name="dropout")
                        if self.dropout_rate > 0 else None)
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    # -- forward ----------------------------------------------------------------------
    @staticmethod
    def _run(layers: list, x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(layer, _STATEFUL) else layer(x)
        return x

    def _shortcut(self, block: dict, x: Any) -> Any:
        if block["projection"] is not None:
            return block["projection"](x)
        if block["pad"]:
            low = block["pad"] // 2
            x = keras.ops.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[low, block["pad"] - low]])
        return x

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = self._run(self.first, inputs, training)
        for block in self.blocks:
            y = self._run(block["units"], x, training)
            x = block["add"]([y, self._shortcut(block, x)])
        x = self._run(self.head + self.upsample, x, training)
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        return self.classifier(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(first_features=self.first_features, n_features=list(self.n_features),
                      n_blocks=list(self.n_blocks), dilations=list(self.dilations),
                      head_features=list(self.head_features), head_kernels=list(self.head_kernels),
                      dropout_rate=self.dropout_rate, kernel_size=self.kernel_size, norm=self.norm)
        return config


@keras.saving.register_keras_serializable(package="niftykit")
class HighRes3DNetSmall(HighRes3DNet):
    """HighRes3DNet at half resolution (NiftyNet ``highres3dnet_small``).

    The first convolution has stride 2, the head convolution is 3×3×3 (80
    channels) and a 3×3×3 stride-2 transposed convolution with the head's
    channels restores the input size, so windows must be even along every
    axis longer than one voxel. Arguments as :class:`HighRes3DNet`.
    """

    first_stride = 2

    def __init__(self, num_classes: int, head_features: Sequence[int] = (80,),
                 head_kernels: Sequence[int] = (3,), **kwargs: Any) -> None:
        super().__init__(num_classes, head_features=head_features, head_kernels=head_kernels,
                         **kwargs)

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """2: the stride-2 convolution and the ×2 transposed convolution."""
        return cls.first_stride


@keras.saving.register_keras_serializable(package="niftykit")
class HighRes3DNetLarge(HighRes3DNet):
    """HighRes3DNet with a wider head (NiftyNet ``highres3dnet_large``).

    After the blocks: a 3×3×3 and a 1×1×1 convolution of 64 channels, then
    dropout (rate 0.5; NiftyNet's default ``keep_prob`` in this network) and
    the classifier. Arguments as :class:`HighRes3DNet`.
    """

    def __init__(self, num_classes: int, head_features: Sequence[int] = (64, 64),
                 head_kernels: Sequence[int] = (3, 1), dropout_rate: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, head_features=head_features, head_kernels=head_kernels,
                         dropout_rate=dropout_rate, **kwargs)
