"""A regression head on any niftykit network used as an encoder.

The encoder (any registered network, or ``package.module:Class``) is built
with ``num_classes=features``. Its output, a voxel feature map
``(batch, x, y, z, features)`` or a vector ``(batch, features)``, goes
through the activation (the encoder's outputs are linear), global average
or max pooling for feature maps, optional hidden Dense layers (activation,
dropout) and a linear ``Dense(num_classes)``: one value per regression
target and window, in float32. This is the usual "backbone + global pooling
+ fully connected" regressor (e.g. brain-age regression, Cole et al.,
NeuroImage 2017).

The window contract is the encoder's: the head accepts exactly the windows
its encoder accepts.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer
from niftykit.network.registry import NETWORKS

__all__ = ["RegressionHead"]

POOLINGS = {"avg": keras.layers.GlobalAveragePooling3D, "max": keras.layers.GlobalMaxPooling3D}
#: the BaseNet arguments passed on to the encoder
_COMMON = ("activation", "spatial_rank", "weight_initializer", "weight_initializer_args",
           "bias_initializer", "bias_initializer_args", "decay", "reg_type")


def _encoder_name(encoder: Union[str, type]) -> str:
    """A config string for ``encoder``: registered name, dotted path, or a class's path."""
    if isinstance(encoder, str):
        return encoder
    return f"{encoder.__module__}:{encoder.__qualname__}"


@keras.saving.register_keras_serializable(package="niftykit")
class RegressionHead(BaseNet):
    """Global pooling and Dense layers on top of an encoder network.

    Args:
        num_classes: regression targets (outputs per window).
        encoder: a registered network name (``unet``, ``resnet``...),
            ``package.module:Class``, or a network class.
        encoder_params: the encoder's own parameters (``n_features``...);
            the common arguments (activation, spatial_rank, initialisers,
            decay, reg_type) are the head's unless given here.
        features: channels (or vector length) asked of the encoder, i.e.
            its ``num_classes``.
        pooling: ``avg`` or ``max`` global pooling of voxel feature maps.
        hidden: widths of Dense layers between pooling and output.
        dropout: dropout rate before each Dense layer (0 for none).
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.

    Shapes: input ``(batch, x, y, z, channels)`` (windows the encoder
    accepts); output ``(batch, num_classes)``, linear, float32.
    """

    output_kind = "vector"

    def __init__(self, num_classes: int, encoder: Union[str, type] = "resnet",
                 encoder_params: Optional[Mapping[str, Any]] = None, features: int = 32,
                 pooling: str = "avg", hidden: Sequence[int] = (), dropout: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.encoder_name = _encoder_name(encoder)
        self.encoder_params = dict(encoder_params or {})
        self.features = int(features)
        self.pooling = pooling
        self.hidden = [int(h) for h in hidden]
        self.dropout = float(dropout)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}' (available: {', '.join(POOLINGS)})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if "num_classes" in self.encoder_params:
            raise ValueError("encoder_params must not set num_classes; the head asks the "
                             "encoder for `features` outputs")
        self._build_layers(NETWORKS.get(encoder))

    def _build_layers(self, encoder_class: Any) -> None:
        common = {key: getattr(self, key) for key in _COMMON}
        self.encoder = encoder_class(num_classes=self.features, name="encoder",
                                     **{**common, **self.encoder_params})
        self.head_act = activation_layer(self.activation, "head_act")
        self.head_pool = POOLINGS[self.pooling](name="head_pool")
        self.head_layers = []
        for i, width in enumerate(self.hidden):
            self.head_layers += self._dropout(f"head_dropout{i}") + [
                keras.layers.Dense(width, name=f"head_hidden{i}", **self.conv_kwargs()),
                activation_layer(self.activation, f"head_hidden{i}_act")]
        self.head_layers += self._dropout("head_dropout_out")
        self.regressor = keras.layers.Dense(self.num_classes, name="head_output", dtype="float32",
                                            **self.conv_kwargs())

    def _dropout(self, name: str) -> list:
        return [keras.layers.Dropout(self.dropout, name=name)] if self.dropout else []

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = self.head_act(self.encoder(inputs, training=training))
        if len(x.shape) > 2:  # a voxel feature map
            x = self.head_pool(x)
        for layer in self.head_layers:
            x = layer(x, training=training) if isinstance(layer, keras.layers.Dropout) else layer(x)
        return self.regressor(x)

    # -- the window contract: the encoder's --------------------------------------------
    @staticmethod
    def _encoder(params: Mapping[str, Any]) -> tuple:
        encoder = NETWORKS.get(params.get("encoder", "resnet"))
        return encoder, dict(params.get("encoder_params") or {})

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        encoder, encoder_params = cls._encoder(params)
        divisor_of = getattr(encoder, "window_divisor", None)
        return int(divisor_of(encoder_params)) if divisor_of is not None else 1

    @classmethod
    def window_minimum(cls, params: Mapping[str, Any]) -> int:
        encoder, encoder_params = cls._encoder(params)
        minimum_of = getattr(encoder, "window_minimum", None)
        return int(minimum_of(encoder_params)) if minimum_of is not None else 2

    @classmethod
    def output_size(cls, size: int, params: Mapping[str, Any]) -> Optional[int]:
        """The encoder's output size for ``size`` (None where the encoder rejects it)."""
        encoder, encoder_params = cls._encoder(params)
        output_of = getattr(encoder, "output_size", None)
        if output_of is not None:
            return output_of(size, encoder_params)
        return super().output_size(size, params)

    @classmethod
    def window_rule(cls, params: Mapping[str, Any]) -> str:
        encoder, encoder_params = cls._encoder(params)
        rule_of = getattr(encoder, "window_rule", None)
        return rule_of(encoder_params) if rule_of is not None else super().window_rule(params)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(encoder=self.encoder_name, encoder_params=dict(self.encoder_params),
                      features=self.features, pooling=self.pooling, hidden=list(self.hidden),
                      dropout=self.dropout)
        return config
