"""Residual U-Net: the Keras twin of MONAI's ``monai.networks.nets.UNet``.

Kerfoot et al., "Left-Ventricle Quantification Using Residual U-Net", STACOM 2018
(LNCS 11395, doi:10.1007/978-3-030-12029-0_40), as MONAI implements it
(``monai/networks/nets/unet.py`` with ``ResidualUnit`` and ``Convolution`` of
``monai/networks/blocks/convolutions.py``). Same layers, same order, same
parameters; only the memory layout (channels-last) and the initialisers
(niftykit's ``weight_initializer``, He normal by default, where torch uses its
default uniform) differ. ``ResUNet(num_classes=9, channels=(16, 32, 64),
strides=(2, 2), num_res_units=2, norm="batch", act="relu")`` has the 290,271
trainable parameters of ``UNet(spatial_dims=3, in_channels=1, out_channels=9,
channels=(16, 32, 64), strides=(2, 2), num_res_units=2, norm="batch", act="relu")``.

Structure, for ``channels`` ``c_0 .. c_L`` and ``strides`` ``s_0 .. s_{L-1}``
(one stride per level but the deepest):

* encoder level ``i``: a residual unit ``in -> c_i`` whose first convolution
  has stride ``s_i`` (the down-sampling happens in the unit, no pooling);
* bottom: a residual unit ``c_{L-1} -> c_L`` of stride 1;
* decoder level ``i`` (deepest first): the encoder's output of level ``i``
  concatenated (first) with what came up from below, a transposed convolution
  of stride ``s_i`` to ``c_{i-1}`` channels (``num_classes`` at the top) with
  normalisation, dropout and activation, then a residual unit of one
  convolution; at the top that convolution is bare (``conv_only``: the
  logits), so the output is ``conv(x) + x`` with ``x`` the activated
  transposed convolution's output, as in MONAI.

A residual unit (``num_res_units`` > 0) is ``subunits`` convolutions, each
followed by ``adn_ordering`` of normalisation (N), dropout (D) and activation
(A) (``"NDA"``), added to a residual path: the input itself, or, when the unit
changes the channels or the size, a convolution of the input (kernel
``kernel_size`` and the unit's stride when it down-samples, else 1³). Encoder
and bottom units have ``num_res_units`` subunits; decoder units have one.
With ``num_res_units=0`` each unit is a single convolution + ADN and the top
transposed convolution is bare.

Padding is PyTorch's, exactly: every convolution pads ``(k - 1) / 2`` voxels on
both sides (odd kernels only, as MONAI). At stride 1 this is Keras' ``same``.
At stride ``s`` > 1 Keras' ``same`` would pad ``0`` before and ``1`` after an
even axis (a 3³ kernel centred at ``2i + 1``), PyTorch pads 1 on each side (centred
at ``2i``): here the input is padded explicitly (``ZeroPad3D``) and the
strided convolution is ``valid``; both give ``ceil(n / s)`` voxels. A transposed
convolution with PyTorch's ``padding=p`` and ``output_padding=s - 1`` (MONAI's
``stride_minus_kernel_padding(1, s)``) is the full (``valid``) transposed
convolution, of ``(n - 1) s + k`` voxels, with ``output_padding`` voxels appended
that receive only the bias, cropped by ``p`` at both ends: ``n s`` voxels (for
k = 3, s = 2: the full output without its first voxel). Keras' ``same`` keeps the
first ``n s`` voxels of the full output instead (without its last voxel), so here
it is ``valid`` (with ``output_padding = max(s - 1 - p, 0)``) then
``Crop3D((p, max(p - s + 1, 0)))`` (a slice). Inputs must be divisible by the product
of the strides along every axis longer than one voxel (MONAI's rule: otherwise
the skip connection's sizes disagree).

Normalisations as MONAI's defaults: ``batch`` is ``BatchNorm3d(eps=1e-5,
momentum=0.1)`` (Keras ``momentum=0.9``, ``epsilon=1e-5``), ``instance`` is
``InstanceNorm3d`` without affine parameters. ``prelu`` is torch's ``PReLU()``:
one slope for the whole tensor, initialised to 0.25. Dropout is element-wise
(MONAI's ``dropout_dim=1``).

Shapes: input ``(batch, x, y, z, channels)``; output ``(batch, x, y, z,
num_classes)`` logits in float32 (also under mixed precision). With
``spatial_rank=2`` kernels and strides are ``(k, k, 1)`` for 2-D windows stored
as ``(x, y, 1)``: the parameter count is then MONAI's with ``spatial_dims=2``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import BatchNorm, Crop3D, PReLU, ZeroPad3D, activation_layer

__all__ = ["ResUNet"]

NORMS = ("batch", "instance", "none")


@keras.saving.register_keras_serializable(package="niftykit")
class ResUNet(BaseNet):
    """Residual U-Net, MONAI's ``UNet`` in Keras (see the module docstring).

    The defaults are issue 6's network (MONAI's own defaults are ``act="prelu"``,
    ``norm="instance"``, ``num_res_units=0``; ``channels`` and ``strides`` have none).

    Args:
        num_classes: output channels (MONAI's ``out_channels``).
        channels: features per level, shallowest first; at least two.
        strides: down-sampling stride of each level but the deepest
            (``len(channels) - 1`` values).
        num_res_units: convolutions of the encoder's and the bottom's residual
            units; 0: plain convolutions, no residual units.
        norm: ``batch``, ``instance`` (no affine parameters, as MONAI) or ``none``.
        act: activation (MONAI's name for it); overrides ``activation``, the
            common argument that ``network.activation_function`` sets. ``prelu``
            has one parameter, as torch's ``PReLU()``.
        kernel_size: odd kernel size of the convolutions.
        up_kernel_size: odd kernel size of the transposed convolutions.
        dropout: element-wise dropout rate after each normalisation; 0 leaves it out.
        bias: biases on the convolutions (MONAI: True, even before batch norm).
        adn_ordering: order of normalisation (N), dropout (D) and activation (A)
            after each convolution (MONAI's ``"NDA"``).
        in_channels: input channels, only needed when the first level has stride 1 and
            residual units: MONAI's residual path there is the identity if the input
            has ``channels[0]`` channels, else a 1³ convolution; None takes the latter.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: fewer than two levels, a stride count that is not
            ``len(channels) - 1``, an even kernel, a negative ``num_res_units``,
            an unknown ``norm`` or ``adn_ordering``, or a ``dropout`` outside [0, 1).
    """

    def __init__(self, num_classes: int, channels: Sequence[int] = (16, 32, 64),
                 strides: Sequence[int] = (2, 2), num_res_units: int = 2, norm: str = "batch",
                 act: Optional[str] = None, kernel_size: int = 3, up_kernel_size: int = 3,
                 dropout: float = 0.0, bias: bool = True, adn_ordering: str = "NDA",
                 in_channels: Optional[int] = None, **kwargs: Any) -> None:
        if act is not None:
            kwargs["activation"] = act
        super().__init__(num_classes, **kwargs)
        self.activation = str(self.activation).lower()
        channels, strides = [int(c) for c in channels], [int(s) for s in strides]
        if len(channels) < 2:
            raise ValueError(f"resunet needs at least two channels (levels), got {channels}")
        if len(strides) != len(channels) - 1 or min(strides) < 1:
            raise ValueError(f"resunet needs len(channels) - 1 = {len(channels) - 1} positive "
                             f"strides, got {strides}")
        for key, size in (("kernel_size", kernel_size), ("up_kernel_size", up_kernel_size)):
            if int(size) < 1 or int(size) % 2 == 0:
                raise ValueError(f"{key} must be odd (PyTorch's same padding), got {size}")
        if int(num_res_units) < 0:
            raise ValueError(f"num_res_units must be 0 or more, got {num_res_units}")
        norm = "none" if norm is None else str(norm).lower()
        if norm not in NORMS:
            raise ValueError(f"unknown norm '{norm}' ({', '.join(NORMS)})")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        ordering = str(adn_ordering).upper()
        if not ordering or set(ordering) - set("NDA") or len(set(ordering)) != len(ordering):
            raise ValueError(f"adn_ordering must be letters of 'NDA', each once, got '{adn_ordering}'")
        self.channels, self.strides = channels, strides
        self.num_res_units = int(num_res_units)
        self.norm = norm
        self.kernel_size, self.up_kernel_size = int(kernel_size), int(up_kernel_size)
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.adn_ordering = ordering
        self.in_channels = None if in_channels is None else int(in_channels)
        self._build_layers()

    # -- the window contract ---------------------------------------------------------
    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """The product of the strides (MONAI's rule; 4 for two strides of 2)."""
        return int(math.prod(int(s) for s in cls.setting(params, "strides")))

    # -- layers ----------------------------------------------------------------------
    def _adn(self, filters: int, prefix: str) -> list:
        """Normalisation, dropout and activation in ``adn_ordering`` (MONAI's ADN)."""
        layers = []
        for item in self.adn_ordering:
            if item == "N":
                if self.norm == "batch":
                    layers.append(BatchNorm(
                        momentum=0.9, epsilon=1e-5, name=f"{prefix}_norm"))
                elif self.norm == "instance":
                    layers.append(keras.layers.GroupNormalization(
                        groups=-1, epsilon=1e-5, center=False, scale=False, name=f"{prefix}_norm"))
            elif item == "D" and self.dropout > 0:
                layers.append(keras.layers.Dropout(self.dropout, name=f"{prefix}_dropout"))
            elif item == "A":
                layers.append(self._activation(f"{prefix}_act"))
        return layers

    def _activation(self, name: str) -> keras.layers.Layer:
        if self.activation == "prelu":  # torch.nn.PReLU(): one slope, 0.25
            return PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                                      shared_axes=[1, 2, 3, 4], name=name)
        return activation_layer(self.activation, name)

    def _axes(self, size: int, flat: int = 0) -> tuple:
        """``(size, size, size)``, or ``(size, size, flat)`` for 2-D windows."""
        return (size, size, size if self.spatial_rank == 3 else flat)

    def _padding(self, kernel: int, name: str) -> Optional[keras.layers.Layer]:
        """PyTorch's ``(k - 1) / 2`` on both sides, for a strided convolution."""
        p = (kernel - 1) // 2
        return ZeroPad3D(self._axes(p), name=name) if p else None

    def _conv(self, filters: int, kernel: int, stride: int, name: str) -> keras.layers.Layer:
        """A convolution; ``valid`` after explicit padding when strided, else ``same``."""
        return keras.layers.Conv3D(filters, self.kernel(kernel), strides=self.kernel(stride),
                                   padding="same" if stride == 1 else "valid", use_bias=self.bias,
                                   name=name, **self.conv_kwargs(self.bias))

    def _unit(self, in_channels: Optional[int], out_channels: int, stride: int, subunits: int,
              prefix: str, last_conv_only: bool = False, dtype: Optional[str] = None) -> dict:
        """MONAI's ``ResidualUnit`` (or, with ``subunits`` 0, one ``Convolution``).

        ``in_channels`` None: not known (the network's input), taken as different
        from ``out_channels``. ``dtype``: of the final addition (float32 for the logits).
        """
        k, count = self.kernel_size, max(1, subunits)
        pad = self._padding(k, f"{prefix}_pad") if stride > 1 else None
        convs = []
        for j in range(count):
            bare = last_conv_only and j == count - 1
            convs.append([self._conv(out_channels, k, stride if j == 0 else 1, f"{prefix}_unit{j}_conv")]
                         + ([] if bare else self._adn(out_channels, f"{prefix}_unit{j}")))
        residual = add = None
        if subunits > 0:
            if stride > 1 or in_channels != out_channels:
                residual = self._conv(out_channels, k if stride > 1 else 1, stride,
                                      f"{prefix}_residual")
            add = keras.layers.Add(name=f"{prefix}_add", **({} if dtype is None else dict(dtype=dtype)))
        return dict(pad=pad, convs=convs, residual=residual, add=add)

    def _up(self, in_channels: int, out_channels: int, stride: int, top: bool, prefix: str) -> dict:
        """MONAI's up layer: transposed convolution + ADN, then a one-convolution residual unit
        (at the top: without ADN after its convolution, and the transposed convolution bare
        if there are no residual units)."""
        k = self.up_kernel_size
        p, output_padding = (k - 1) // 2, stride - 1  # MONAI: same_padding(k), stride - 1
        crop = None
        if stride == 1:  # PyTorch's padding (k - 1) / 2 crops both ends alike: Keras' same
            deconv = keras.layers.Conv3DTranspose(
                out_channels, self.kernel(k), padding="same", use_bias=self.bias,
                name=f"{prefix}_deconv", **self.conv_kwargs(self.bias))
        else:
            grow = max(output_padding - p, 0)  # appended voxels that only get the bias
            deconv = keras.layers.Conv3DTranspose(
                out_channels, self.kernel(k), strides=self.kernel(stride), padding="valid",
                output_padding=self._axes(grow) if grow else None, use_bias=self.bias,
                name=f"{prefix}_deconv", **self.conv_kwargs(self.bias))
            end = max(p - output_padding, 0)
            if p or end:
                crop = Crop3D(tuple(zip(self._axes(p), self._axes(end))),
                              name=f"{prefix}_deconv_crop")
        layers = [deconv] + ([crop] if crop is not None else [])
        if not (top and self.num_res_units == 0):
            layers += self._adn(out_channels, f"{prefix}_deconv")
        unit = (self._unit(out_channels, out_channels, 1, 1, f"{prefix}_res", last_conv_only=top,
                           dtype="float32" if top else None) if self.num_res_units > 0 else None)
        return dict(layers=layers, unit=unit)

    def _build_layers(self) -> None:
        c, s, levels = self.channels, self.strides, len(self.channels) - 1
        self.down_units = [self._unit(c[i - 1] if i else self.in_channels, c[i], s[i],
                                      self.num_res_units, f"down{i}")
                           for i in range(levels)]
        self.bottom = self._unit(c[levels - 1], c[levels], 1, self.num_res_units, "bottom")
        self.concats = [keras.layers.Concatenate(axis=-1, name=f"up{i}_concat") for i in range(levels)]
        self.up_layers = [self._up(c[i] + (c[levels] if i == levels - 1 else c[i]),
                                   self.num_classes if i == 0 else c[i - 1], s[i], i == 0, f"up{i}")
                          for i in range(levels)]
        # the logits in float32 under mixed precision (with residual units, the top unit's
        # addition already is a float32 layer)
        self.logits = (keras.layers.Activation("linear", dtype="float32", name="logits")
                       if self.num_res_units == 0 else None)

    @staticmethod
    def _run(layers: Sequence[Any], x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(
                layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) else layer(x)
        return x

    def _run_unit(self, unit: Mapping[str, Any], x: Any, training: Optional[bool]) -> Any:
        if unit["pad"] is not None:
            x = unit["pad"](x)  # shared by the first convolution and the strided residual
        y = x
        for layers in unit["convs"]:
            y = self._run(layers, y, training)
        if unit["add"] is None:
            return y
        residual = unit["residual"](x) if unit["residual"] is not None else x
        return unit["add"]([y, residual])

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        skips: List[Any] = []
        x = inputs
        for unit in self.down_units:
            x = self._run_unit(unit, x, training)
            skips.append(x)
        x = self._run_unit(self.bottom, x, training)
        for i in reversed(range(len(self.up_layers))):
            up = self.up_layers[i]
            x = self._run(up["layers"], self.concats[i]([skips[i], x]), training)
            if up["unit"] is not None:
                x = self._run_unit(up["unit"], x, training)
        return self.logits(x) if self.logits is not None else x

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(channels=list(self.channels), strides=list(self.strides),
                      num_res_units=self.num_res_units, norm=self.norm,
                      kernel_size=self.kernel_size, up_kernel_size=self.up_kernel_size,
                      dropout=self.dropout, bias=self.bias, adn_ordering=self.adn_ordering,
                      in_channels=self.in_channels)
        return config
