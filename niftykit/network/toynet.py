"""ToyNet: two convolutions, for tests and smoke runs (NiftyNet's ``toynet``).

Shapes: ``(batch, x, y, z, channels)`` → ``(batch, x, y, z, num_classes)`` logits (float32).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer

__all__ = ["ToyNet"]


@keras.saving.register_keras_serializable(package="niftykit")
class ToyNet(BaseNet):
    """A 3×3×3 convolution with ``n_features`` channels, an activation and a 1×1×1 classifier.

    Args:
        num_classes: output channels.
        n_features: hidden channels.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.
    """

    def __init__(self, num_classes: int, n_features: int = 10, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.n_features = int(n_features)
        self.conv = keras.layers.Conv3D(self.n_features, self.kernel(3), padding="same",
                                        name="conv", **self.conv_kwargs())
        self.act = activation_layer(self.activation, "act")
        self.classifier = keras.layers.Conv3D(self.num_classes, 1, name="classifier",
                                              dtype="float32", **self.conv_kwargs())

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        return self.classifier(self.act(self.conv(inputs)))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=self.n_features)
        return config
