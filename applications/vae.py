"""A small convolutional variational autoencoder and its loss, the variational lower bound.

Kingma & Welling, "Auto-encoding variational Bayes", ICLR 2014 (arXiv:1312.6114);
the layout of NiftyNet's ``niftynet/network/vae.py``: an encoder to the posterior's
means and log-variances, a Gaussian sample, and a decoder to the means and
log-variances of the voxels, each modelled as a Gaussian.

The engine hands the application one tensor per batch (``model(images)`` to the
``loss`` hook, ``predict(windows)`` at inference), so :meth:`VAE.call` packs its
four outputs into one ``(batch, n)`` tensor and :func:`unpack` splits it again.
Used by :mod:`applications.autoencoder`; in a config it is
``network.name: applications.autoencoder:VAE``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import keras
from keras import ops

from niftykit.network.base import BaseNet
from niftykit.network.layers import activation_layer

__all__ = ["VAE", "unpack", "variational_lower_bound", "LATENT_SIZE"]

LATENT_SIZE = 16
N_FEATURES = (8, 16)
_LOG_2PI = math.log(2.0 * math.pi)


@keras.saving.register_keras_serializable(package="applications")
class VAE(BaseNet):
    """Convolutional VAE for windows of a fixed size.

    Encoder: per entry of ``n_features`` a stride-2 3×3×3 convolution and the
    activation; a Dense layer to ``2 × latent_size`` (means, log-variances).
    Decoder: a Dense layer back to the coarsest feature map, per level a
    stride-2 transposed convolution and the activation, a 1×1×1 convolution to
    ``2 × num_classes`` (voxel means, log-variances bounded by ``±logvar_bound``).

    Args:
        num_classes: image channels (reconstructed per voxel).
        window: the window ``(x, y, z)``; divisible by ``2 ** len(n_features)``
            along every axis longer than one voxel.
        n_features: encoder channels per level (decoder: the reverse).
        latent_size: dimensions of the latent code.
        decode_codes: take latent codes ``(batch, 1, 1, 1, latent_size)``
            instead of images and decode them (sampling from the prior).
        logvar_bound: the voxels' log-variances are clipped to ``±logvar_bound``.
        seed: seed of the posterior samples drawn in training.
        **kwargs: the common arguments of :class:`~niftykit.network.base.BaseNet`.

    Shapes: input ``(batch, x, y, z, num_classes)`` images (or codes, above);
    output ``(batch, 2 × x·y·z·num_classes + 2 × latent_size)`` float32, see :func:`unpack`.
    In training the code decoded is a sample of the posterior, otherwise its mean.
    """

    def __init__(self, num_classes: int, window: Sequence[int],
                 n_features: Sequence[int] = N_FEATURES, latent_size: int = LATENT_SIZE,
                 decode_codes: bool = False, logvar_bound: float = 6.0, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.window = tuple(int(s) for s in window)
        self.n_features = [int(f) for f in n_features]
        self.latent_size = int(latent_size)
        self.decode_codes = bool(decode_codes)
        self.logvar_bound = float(logvar_bound)
        self.seed = int(seed)
        scale = 2 ** len(self.n_features)
        if any(s > 1 and s % scale for s in self.window):
            raise ValueError(f"window {list(self.window)} must be divisible by {scale} "
                             f"(2 ** len(n_features)) along every axis")
        self.coarsest = tuple(s // scale if s > 1 else 1 for s in self.window)
        self._build_layers()

    def _build_layers(self) -> None:
        stride, kernel = self.kernel(2), self.kernel(3)
        self.encoder = []
        for i, features in enumerate(self.n_features):
            self.encoder += [
                keras.layers.Conv3D(features, kernel, strides=stride, padding="same",
                                    name=f"encoder{i}_conv", **self.conv_kwargs()),
                activation_layer(self.activation, f"encoder{i}_act")]
        self.flatten = keras.layers.Flatten(name="encoder_flatten")
        self.posterior = keras.layers.Dense(2 * self.latent_size, name="posterior",
                                            dtype="float32", **self.conv_kwargs())
        cells = math.prod(self.coarsest) * self.n_features[-1]
        self.expand = keras.layers.Dense(cells, name="decoder_dense", **self.conv_kwargs())
        self.expand_act = activation_layer(self.activation, "decoder_dense_act")
        self.reshape = keras.layers.Reshape((*self.coarsest, self.n_features[-1]),
                                            name="decoder_reshape")
        self.decoder = []
        for i, features in enumerate(reversed(self.n_features)):
            self.decoder += [
                keras.layers.Conv3DTranspose(features, kernel, strides=stride, padding="same",
                                             name=f"decoder{i}_deconv", **self.conv_kwargs()),
                activation_layer(self.activation, f"decoder{i}_act")]
        self.likelihood = keras.layers.Conv3D(2 * self.num_classes, 1, name="likelihood",
                                              dtype="float32", **self.conv_kwargs())
        self.sampler = keras.random.SeedGenerator(self.seed, name="posterior_sampler")

    def build(self, input_shape: Any) -> None:
        """Every weight, whatever the input (images or codes): one pass of zeros."""
        means, _ = self.encode(ops.zeros((1, *self.window, self.num_classes)))
        self.decode(means)
        self.built = True

    def encode(self, images: Any) -> tuple:
        """Posterior means and log-variances ``(batch, latent_size)`` of images."""
        x = images
        for layer in self.encoder:
            x = layer(x)
        statistics = self.posterior(self.flatten(x))
        return statistics[:, :self.latent_size], statistics[:, self.latent_size:]

    def decode(self, codes: Any) -> tuple:
        """Voxel means and log-variances ``(batch, x, y, z, num_classes)`` of codes."""
        x = self.reshape(self.expand_act(self.expand(codes)))
        for layer in self.decoder:
            x = layer(x)
        out = self.likelihood(x)
        logvar = ops.clip(out[..., self.num_classes:], -self.logvar_bound, self.logvar_bound)
        return out[..., :self.num_classes], logvar

    def call(self, inputs: Any, training: Optional[bool] = None) -> Any:
        if self.decode_codes:
            means = ops.reshape(ops.cast(inputs, "float32"), (-1, self.latent_size))
            logvars = ops.zeros_like(means)
            codes = means
        else:
            means, logvars = self.encode(inputs)
            codes = means
            if training:
                noise = keras.random.normal(ops.shape(means), seed=self.sampler)
                codes = means + ops.exp(0.5 * logvars) * noise
        data_means, data_logvars = self.decode(codes)
        batch = ops.shape(means)[0]
        return ops.concatenate([ops.reshape(data_means, (batch, -1)),
                                ops.reshape(data_logvars, (batch, -1)), means, logvars], axis=-1)

    # -- the window contract ----------------------------------------------------------
    @classmethod
    def window_divisor(cls, params: Mapping[str, Any]) -> int:
        return 2 ** len(params.get("n_features", N_FEATURES))

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(window=list(self.window), n_features=list(self.n_features),
                      latent_size=self.latent_size, decode_codes=self.decode_codes,
                      logvar_bound=self.logvar_bound, seed=self.seed)
        return config


def unpack(outputs: Any, images_shape: Sequence[int]) -> Dict[str, Any]:
    """Split :meth:`VAE.call`'s packed outputs.

    Args:
        outputs: ``(batch, n)`` as returned by the VAE (tensor or numpy).
        images_shape: ``(batch, x, y, z, channels)`` of the images it reconstructs.

    Returns:
        ``data_means`` and ``data_logvars`` ``(batch, x, y, z, channels)``;
        ``posterior_means`` and ``posterior_logvars`` ``(batch, latent_size)``.
    """
    size = math.prod(int(s) for s in images_shape[1:])
    latent = (int(outputs.shape[-1]) - 2 * size) // 2
    shape = (-1, *(int(s) for s in images_shape[1:]))
    return {"data_means": ops.reshape(outputs[:, :size], shape),
            "data_logvars": ops.reshape(outputs[:, size:2 * size], shape),
            "posterior_means": outputs[:, 2 * size:2 * size + latent],
            "posterior_logvars": outputs[:, 2 * size + latent:]}


def variational_lower_bound(parts: Mapping[str, Any], images: Any) -> Any:
    """NiftyNet's ``VariationalLowerBound`` loss: the negative evidence lower bound, in nats
    per image, averaged over the batch (Kingma & Welling 2014, eq. 10).

    ``-log p(x|z)`` sums the Gaussian negative log-likelihood of every voxel,
    ``(logvar + log 2π + (x - mean)² / exp(logvar)) / 2``; the KL divergence of the
    posterior from N(0, I) is ``-(1 + logvar - mean² - exp(logvar)) / 2`` summed over
    the code.

    Args:
        parts: :func:`unpack`'s outputs.
        images: the originals ``(batch, x, y, z, channels)``.
    """
    images = ops.cast(images, "float32")
    means, logvars = parts["data_means"], parts["data_logvars"]
    voxels = logvars + _LOG_2PI + ops.exp(-logvars) * ops.square(means - images)
    nll = 0.5 * ops.sum(ops.reshape(voxels, (ops.shape(voxels)[0], -1)), axis=-1)
    mu, logvar = parts["posterior_means"], parts["posterior_logvars"]
    kl = -0.5 * ops.sum(1.0 + logvar - ops.square(mu) - ops.exp(logvar), axis=-1)
    return ops.mean(nll + kl)
