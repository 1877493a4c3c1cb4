"""DeepMedic: a normal and a subsampled pathway of valid convolutions.

Kamnitsas et al., "Efficient multi-scale 3D CNN with fully connected CRF for
accurate brain lesion segmentation", Medical Image Analysis 36, 2017
(arXiv:1603.05959), as NiftyNet's ``niftynet/network/deepmedic.py`` builds it
from one input window:

* the normal pathway takes the centre of the window at full resolution;
* the subsampled pathway takes the whole window averaged over
  ``d_factor``-voxel cubes (NiftyNet's constant-kernel ``DownSampleLayer``);
* each pathway is a stack of valid 3×3×3 convolution → norm → activation
  units (channels 30, 30, 40, 40, 40, 40, 50, 50);
* the subsampled output is repeated ``d_factor`` times along each axis,
  concatenated with the normal output, and passed through two 1×1×1 "fully
  connected" units (150, 150), each followed by dropout (rate 0.5, as the
  paper's final layers), and a 1×1×1 classifier.

Geometry along one axis, with ``n`` convolutions (``L = 2n`` voxels lost per
pathway), ``d = d_factor`` and an input window of ``S`` voxels:

* the subsampled pathway sees ``S / d`` voxels and gives ``S / d - L``, so
  ``S`` must be divisible by ``d`` and larger than ``d · L``;
* upsampled, that is ``S - L·d`` voxels; the normal pathway crops
  ``c = L (d - 1) / 2`` voxels from each side, so it also gives ``S - L·d``.
  The output is centred in the window, ``L·d / 2`` voxels in from each side.
* output voxel ``j`` (0-based) is centred on input voxel ``j + L·d/2``. Its
  normal receptive field is the ``L + 1`` voxels ``j + c … j + c + L``; with
  ``j = m·d + r`` (``0 ≤ r < d``) its subsampled receptive field is the
  ``(L + 1)·d`` voxels ``m·d … (m + L + 1)·d - 1``, centred on the output
  voxel for ``r = (d - 1) / 2`` and at most ``(d - 1) / 2`` voxels off it
  otherwise (the cost of repeating, not interpolating; an odd ``d`` keeps
  the offsets symmetric, so ``d_factor`` must be odd, as in NiftyNet).

With the defaults (8 convolutions, ``d = 3``): window ``S`` → output
``S - 48``, ``S`` a multiple of 3 and at least 51. NiftyNet's training
window 57³ gives the paper's setting: the normal pathway convolves the
central 25³ (receptive field 17³), the subsampled pathway the 19³ average of
the whole 57³ (receptive field 51³), and the output is 9³. NiftyNet also
asserted odd windows "to make the crop centred"; the crop is symmetric for
any size, so even multiples of ``d`` (60 → 12) are accepted here.

Optional residual connections (``residual_layers``, 1-based indices; the
later DeepMedic releases used 4, 6 and 8, Kamnitsas et al., BrainLes 2016)
add the input of the previous unit, centre-cropped by two voxels per side and
zero-padded along the channels, to the output of the named unit.

Differences from NiftyNet: the classifier has a bias and no normalisation or
activation (NiftyNet applied both to the logits); NiftyNet had no dropout.

Shapes: input ``(batch, S, S, S, channels)``; output ``(batch, S - L·d, …,
num_classes)`` logits in float32. With ``spatial_rank=2`` kernels, crops and
pooling are flat along z for windows ``(x, y, 1)``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import Crop3D, activation_layer, norm_layer

__all__ = ["DeepMedic"]

_CONV_FEATURES = (30, 30, 40, 40, 40, 40, 50, 50)
_STATEFUL = (keras.layers.BatchNormalization, keras.layers.Dropout)


@keras.saving.register_keras_serializable(package="niftykit")
class DeepMedic(BaseNet):
    """DeepMedic (Kamnitsas et al., MedIA 2017), two pathways from one window.

    Args:
        num_classes: output channels (labels including background).
        conv_features: channels of the valid 3×3×3 convolutions of each pathway.
        fc_features: channels of the 1×1×1 layers after the concatenation.
        d_factor: subsampling factor of the second pathway (odd).
        dropout_rate: dropout after each 1×1×1 layer; 0 leaves it out.
        residual_layers: 1-based indices (3 or more) of pathway convolutions
            that receive a residual connection from the input of the
            convolution before (e.g. ``[4, 6, 8]``); empty for the MedIA 2017
            network.
        norm: ``batch``, ``instance``, ``group`` or ``none`` (convolutions
            followed by a normalisation have no bias).
        activation: NiftyNet activation name; PReLU as the paper and NiftyNet.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.

    Raises:
        ValueError: for an even ``d_factor``, a residual index out of range or
            a residual connection into fewer channels than it carries.
    """

    def __init__(self, num_classes: int, conv_features: Sequence[int] = _CONV_FEATURES,
                 fc_features: Sequence[int] = (150, 150), d_factor: int = 3,
                 dropout_rate: float = 0.5, residual_layers: Sequence[int] = (),
                 norm: str = "batch", activation: str = "prelu", **kwargs: Any) -> None:
        super().__init__(num_classes, activation=activation, **kwargs)
        self.conv_features = [int(f) for f in conv_features]
        self.fc_features = [int(f) for f in fc_features]
        self.d_factor = int(d_factor)
        self.dropout_rate = float(dropout_rate)
        self.residual_layers = sorted(int(i) for i in residual_layers)
        self.norm = norm
        if self.d_factor < 1 or self.d_factor % 2 == 0:
            raise ValueError(f"d_factor must be odd (the subsampled context is centred on the "
                             f"output only then), got {self.d_factor}")
        self._check_residuals()
        self._build_layers()

    def _check_residuals(self) -> None:
        n = len(self.conv_features)
        for i in self.residual_layers:
            if not 3 <= i <= n:
                raise ValueError(f"residual_layers: {i} is not a convolution from 3 to {n} "
                                 "(the shortcut starts at the output of convolution i - 2)")
            out, skip = self.conv_features[i - 1], self.conv_features[i - 3]
            if out < skip:
                raise ValueError(f"residual_layers: convolution {i} has {out} channels, fewer "
                                 f"than the {skip} its shortcut carries")

    # -- window contract --------------------------------------------------------------
    @classmethod
    def _geometry(cls, params: Mapping[str, Any]) -> tuple:
        n = len(cls.setting(params, "conv_features"))
        return 2 * n, int(cls.setting(params, "d_factor"))

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        return cls._geometry(params)[1]

    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        lost, d = cls._geometry(params)
        return d * (lost + 1)

    @classmethod
    def output_size(cls, size: int, params: Mapping[str, Any]) -> Optional[int]:
        """``size - L·d`` for sizes divisible by ``d`` with ``size / d > L``, else None."""
        lost, d = cls._geometry(params)
        if d < 1 or d % 2 == 0 or size % d or size // d <= lost:
            return None
        return int(size - lost * d)

    @classmethod
    def window_rule(cls, params: Mapping[str, Any]) -> str:
        lost, d = cls._geometry(params)
        if d < 1 or d % 2 == 0:
            return f"that exist only for an odd d_factor (got {d})"
        return (f"divisible by {d} (d_factor), at least {d * (lost + 1)}; "
                f"the output is {lost * d} voxels smaller")

    # -- layers -----------------------------------------------------------------------
    def _unit(self, filters: int, kernel: int, prefix: str) -> list:
        """Convolution → norm → activation (NiftyNet's ConvolutionalLayer order)."""
        norm = norm_layer(self.norm, filters, f"{prefix}_norm")
        conv = keras.layers.Conv3D(filters, self.kernel(kernel), padding="valid",
                                   use_bias=norm is None, name=f"{prefix}_conv",
                                   **self.conv_kwargs(bias=norm is None))
        return [layer for layer in (conv, norm, activation_layer(self.activation, f"{prefix}_act"))
                if layer is not None]

    def _crop(self, border: int, name: str) -> Crop3D:
        z = border if self.spatial_rank == 3 else 0
        return Crop3D(((border, border), (border, border), (z, z)), name=name)

    def _pathway(self, path: str) -> list:
        """One unit per convolution; a residual unit also carries its shortcut's crop and sum."""
        units = []
        for i, filters in enumerate(self.conv_features, start=1):
            unit = dict(layers=self._unit(filters, 3, f"{path}{i}"))
            if i in self.residual_layers:
                unit.update(crop=self._crop(2, f"{path}{i}_res_crop"),
                            add=keras.layers.Add(name=f"{path}{i}_res_add"),
                            pad=filters - self.conv_features[i - 3])
            units.append(unit)
        return units

    def _build_layers(self) -> None:
        lost, d = 2 * len(self.conv_features), self.d_factor
        self.normal_crop = self._crop(lost * (d - 1) // 2, "normal_crop")
        self.normal = self._pathway("normal")
        # float32: TensorFlow has no float16 AvgPool3D on CPU (mixed precision)
        self.subsample = keras.layers.AveragePooling3D(self.kernel(d), strides=self.kernel(d),
                                                       padding="valid", name="subsampled_pool",
                                                       dtype="float32")
        self.subsampled = self._pathway("subsampled")
        self.upsample = keras.layers.UpSampling3D(self.kernel(d), name="subsampled_upsample")
        self.concat = keras.layers.Concatenate(axis=-1, name="pathways_concat")
        self.fc = []
        for i, filters in enumerate(self.fc_features, start=1):
            self.fc += self._unit(filters, 1, f"fc{i}")
            if self.dropout_rate > 0:
                self.fc.append(keras.layers.Dropout(self.dropout_rate, name=f"fc{i}_dropout"))
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    # -- forward ----------------------------------------------------------------------
    @staticmethod
    def _run(layers: list, x: Any, training: Optional[bool]) -> Any:
        for layer in layers:
            x = layer(x, training=training) if isinstance(layer, _STATEFUL) else layer(x)
        return x

    def _run_pathway(self, units: list, x: Any, training: Optional[bool]) -> Any:
        inputs = [x]  # inputs[k]: input of convolution k + 1
        for i, unit in enumerate(units, start=1):
            x = self._run(unit["layers"], x, training)
            if "add" in unit:
                skip = unit["crop"](inputs[i - 2])
                if unit["pad"]:
                    low = unit["pad"] // 2
                    skip = keras.ops.pad(skip, [[0, 0]] * 4 + [[low, unit["pad"] - low]])
                x = unit["add"]([x, skip])
            inputs.append(x)
        return x

    def _check_window(self, shape: Sequence[Optional[int]]) -> None:
        params = dict(conv_features=self.conv_features, d_factor=self.d_factor)
        bad = [s for s in shape
               if s is not None and s > 1 and self.output_size(s, params) is None]
        if bad:
            raise ValueError(f"DeepMedic cannot take a window of {list(shape)}: sizes must be "
                             f"{self.window_rule(params)}")

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        self._check_window(tuple(inputs.shape[1:4]))
        normal = self._run_pathway(self.normal, self.normal_crop(inputs), training)
        subsampled = self._run_pathway(self.subsampled, self.subsample(inputs), training)
        x = self.concat([normal, self.upsample(subsampled)])
        return self.classifier(self._run(self.fc, x, training))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(conv_features=list(self.conv_features), fc_features=list(self.fc_features),
                      d_factor=self.d_factor, dropout_rate=self.dropout_rate,
                      residual_layers=list(self.residual_layers), norm=self.norm)
        return config
