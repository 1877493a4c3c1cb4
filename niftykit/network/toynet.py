"""ToyNet: two convolutions, for tests and smoke runs (NiftyNet's ``toynet``).

Shapes: ``(batch, x, y, z, channels)`` → ``(batch, x, y, z, num_classes)`` logits (float32).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import keras

from niftykit.network.layers import activation_layer, initializer, regularizer

__all__ = ["ToyNet"]


@keras.saving.register_keras_serializable(package="niftykit")
class ToyNet(keras.Model):
    """A 3×3×3 convolution with ``n_features`` channels, an activation and a 1×1×1 classifier.

    Args:
        num_classes: output channels.
        n_features: hidden channels.
        activation: NiftyNet activation name.
        spatial_rank: 3, or 2 for ``(x, y, 1)`` windows.
        weight_initializer, weight_initializer_args, bias_initializer,
        bias_initializer_args, decay, reg_type: as for :class:`~niftykit.network.unet.UNet3D`.
    """

    def __init__(self, num_classes: int, n_features: int = 10, activation: str = "relu",
                 spatial_rank: int = 3, weight_initializer: str = "he_normal",
                 weight_initializer_args: Optional[Mapping[str, Any]] = None,
                 bias_initializer: str = "zeros",
                 bias_initializer_args: Optional[Mapping[str, Any]] = None,
                 decay: float = 0.0, reg_type: str = "L2", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.n_features = int(n_features)
        self.activation = activation
        self.spatial_rank = int(spatial_rank)
        self.weight_initializer = weight_initializer
        self.weight_initializer_args = dict(weight_initializer_args or {})
        self.bias_initializer = bias_initializer
        self.bias_initializer_args = dict(bias_initializer_args or {})
        self.decay = float(decay)
        self.reg_type = reg_type
        common = dict(
            kernel_initializer=initializer(weight_initializer, self.weight_initializer_args),
            bias_initializer=initializer(bias_initializer, self.bias_initializer_args),
            kernel_regularizer=regularizer(reg_type, self.decay))
        kernel = (3, 3, 3 if self.spatial_rank == 3 else 1)
        self.conv = keras.layers.Conv3D(self.n_features, kernel, padding="same", name="conv", **common)
        self.act = activation_layer(activation, "act")
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **common)

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """Any window size works."""
        return 1

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        return self.classifier(self.act(self.conv(inputs)))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, n_features=self.n_features, activation=self.activation,
            spatial_rank=self.spatial_rank, weight_initializer=self.weight_initializer,
            weight_initializer_args=self.weight_initializer_args,
            bias_initializer=self.bias_initializer, bias_initializer_args=self.bias_initializer_args,
            decay=self.decay, reg_type=self.reg_type)
        return config
