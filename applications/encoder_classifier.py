"""A classifier whose encoder is the VAE's, layer for layer, for pre-training then fine-tuning.

Unsupervised pre-training (Erhan et al., "Why does unsupervised pre-training help deep
learning?", JMLR 11, 2010; Cheng et al., Sci Rep 6:24454, 2016, stacked denoising
autoencoders for lesion classification): train :class:`~applications.vae.VAE` on
unlabelled images (``configs/method_pretrain_autoencoder.yaml``), then start this
classifier from its encoder and fine-tune it on the few labelled ones
(``configs/method_finetune_classifier.yaml``):

    training:
      restore_from: ../runs/method_pretrain/model   # the autoencoder's checkpoints
      vars_to_restore: ^network/encoder             # its encoder{i}_conv layers
      vars_to_freeze: ^network/encoder0             # optional: keep the first level fixed

The encoder has the VAE's layer names and shapes (``encoder{i}_conv``: a stride-2 k×k×k
convolution per entry of ``n_features``, then the activation), so with the same
``n_features``, ``kernel_size`` and input channels each of its variables has the path
(``network/encoder0_conv/kernel``) and shape of the VAE's. The head, global average
pooling and ``Dense(num_classes)`` (``head_logits``), starts afresh; unlike the VAE's
flattening ``posterior``, it takes any window size.

Shapes: input ``(batch, x, y, z, channels)`` (2-D: ``(batch, x, y, 1, channels)`` with
``spatial_rank=2``); output ``(batch, num_classes)`` float32 logits. In a config:
``network.name: applications.encoder_classifier:EncoderClassifier``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import keras

from applications.vae import N_FEATURES
from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer

__all__ = ["EncoderClassifier"]


@keras.saving.register_keras_serializable(package="applications")
class EncoderClassifier(BaseNet):
    """The VAE's encoder (stride-2 convolutions) under a pooled linear head.

    Args:
        num_classes: logits out.
        n_features: encoder channels per level, as the VAE's ``n_features``.
        kernel_size: convolution size (the VAE's is 3).
        dropout: dropout rate before the logits (0: none).
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.
    """

    output_kind = "vector"

    def __init__(self, num_classes: int, n_features: Sequence[int] = N_FEATURES,
                 kernel_size: int = 3, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.n_features = [int(f) for f in n_features]
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)
        if not self.n_features:
            raise ValueError("n_features needs at least one level")
        self.encoder = []
        for i, features in enumerate(self.n_features):
            self.encoder += [
                keras.layers.Conv3D(features, self.kernel(self.kernel_size),
                                    strides=self.kernel(2), padding="same",
                                    name=f"encoder{i}_conv", **self.conv_kwargs()),
                activation_layer(self.activation, f"encoder{i}_act")]
        self.pool = keras.layers.GlobalAveragePooling3D(name="head_pool")
        self.drop = keras.layers.Dropout(self.dropout, name="head_dropout") if self.dropout else None
        self.logits = keras.layers.Dense(self.num_classes, name="head_logits", dtype="float32",
                                         **self.conv_kwargs())

    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        """2 to the number of levels, as the VAE (each halves the window)."""
        return 2 ** len(params.get("n_features", N_FEATURES))

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        x = inputs
        for layer in self.encoder:
            x = layer(x)
        x = self.pool(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.logits(x)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(n_features=list(self.n_features), kernel_size=self.kernel_size,
                      dropout=self.dropout)
        return config
