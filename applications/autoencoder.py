"""NiftyNet's ``net_autoencoder``: a variational autoencoder of whole images.

A worked example of an application written from
:class:`~niftykit.application.base.BaseApplication` (``configs/example_autoencoder.yaml``;
``docs/writing_an_application.md``), for the config section ``autoencoder``
(NiftyNet's ``[AUTOENCODER]``: ``image``, ``inference_type``, ``noise_stddev``).
As in NiftyNet every image is zoomed to the window (``network.window_sampling:
resize``), so one latent code describes one image. The network is
:class:`~applications.vae.VAE` (``network.name`` may be left out or name a
subclass), the loss NiftyNet's ``VariationalLowerBound`` (reconstruction + KL).

``autoencoder.inference_type`` (NiftyNet's values; ``linear_interpolation`` is not
implemented here) decides what ``niftykit infer`` writes for each inference subject
in ``save_seg_dir``:

* ``encode``: ``<id><output_postfix>.csv``, ``subject_id,mean_0..,logvar_0..``
  (the posterior's means and log-variances);
* ``encode-decode`` (the default): ``<id><output_postfix>.nii.gz``, the reconstruction
  (the decoded posterior mean) zoomed back to the input's grid, in the intensities the
  network saw (after any whitening or normalisation), float32;
* ``sample``: ``<id><output_postfix>_sample.nii.gz``, an image decoded from a code drawn
  from N(0, noise_stddev² I) (``noise_stddev`` default 1: the prior), seeded by
  ``system.seed`` and the subject id, written on that subject's grid (NiftyNet wrote
  bare windows); the subject only lends its grid.

There is nothing to evaluate against (NiftyNet neither): ``niftykit evaluate`` says so.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence

import numpy as np

from applications.vae import LATENT_SIZE, VAE, unpack, variational_lower_bound
from niftykit.application.base import BaseApplication, PredictFn
from niftykit.application.per_image import augmented_sampler, images_only, output_file
from niftykit.application.preparation import build_preprocessor, fit_preprocessor
from niftykit.errors import ConfigError, DataError, NiftykitError
from niftykit.io import Subject, write_image
from niftykit.io.preprocess import Preprocessor
from niftykit.sampler import ResizeSampler, VectorAggregator, resize_to

__all__ = ["AutoencoderApplication", "VAE"]

INFERENCE_TYPES = ("encode", "encode-decode", "sample")


class AutoencoderApplication(BaseApplication):
    """A VAE of whole images (config section ``autoencoder``).

    Raises:
        ConfigError: no ``image``, or a ``training.loss_type`` other than
            ``VariationalLowerBound`` (NiftyNet's default ``Dice`` is read as unset).
    """

    section = "autoencoder"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        if not self.task.image:
            raise ConfigError(f"{config.source}: [autoencoder] image: required (the input "
                              "section(s) to encode)")
        if config.training.loss_type not in ("Dice", "VariationalLowerBound"):
            raise ConfigError(f"{config.source}: [training] loss_type: the autoencoder trains "
                              f"on VariationalLowerBound, got '{config.training.loss_type}'")
        self.inference_type = self.task.inference_type or "encode-decode"
        self.phase = "training"  # set by prepare(); decides what the network takes
        self.channels = len(self.task.image)  # corrected from the data in prepare()
        self._preprocessor: Optional[Preprocessor] = None

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        return list(self.task.image)

    @property
    def preprocessor(self) -> Preprocessor:
        """The images' preprocessing (built from the config on first use)."""
        if self._preprocessor is None:
            self._preprocessor = build_preprocessor(self.config, images_only(self.task), 2)
        return self._preprocessor

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Learn or load the intensity standardisation; note the phase and the channels."""
        if phase == "inference" and self.inference_type not in INFERENCE_TYPES:
            raise ConfigError(f"{self.config.source}: [autoencoder] inference_type: "
                              f"'{self.inference_type}' is not implemented by this example "
                              f"(use {', '.join(INFERENCE_TYPES)})")
        self.phase = phase
        self._preprocessor = fit_preprocessor(self.config, images_only(self.task),
                                              self.preprocessor, phase, subjects)
        if subjects:
            self.channels = self.load_volumes(subjects[0], phase)["image"].shape[-1]

    def preprocess(self, subject: Subject, with_label: bool) -> Any:
        return self.preprocessor(subject, with_label=False)

    def make_sampler(self, rng: np.random.Generator,
                     phase: str = "training") -> Callable[[Mapping[str, np.ndarray]], list]:
        """Whole images zoomed to the window (augmented in training), as NiftyNet did."""
        window, where = self.training_window(), f"{self.config.source}: [network]"
        if self.config.network.window_sampling != "resize":
            raise ConfigError(f"{where} window_sampling: the autoencoder codes whole images; "
                              f"use resize, got {self.config.network.window_sampling}")
        if not all(size > 0 for size in window):
            raise ConfigError(f"{self.config.source}: [inputs.{self.task.image[0]}] "
                              f"spatial_window_size: a full window is needed, got {list(window)}")
        self.check_window(window, f"[inputs.{self.task.image[0]}] spatial_window_size")
        orders = {"image": max(self.config.inputs[self.task.image[0]].interp_order, 0)}
        sampler = ResizeSampler(window, self.config.training.sample_per_volume, orders, rng)
        return augmented_sampler(sampler, self.augmenter(rng) if phase == "training" else None,
                                 orders)

    # -- model --------------------------------------------------------------------
    def network_class(self) -> Any:
        """``network.name`` (a :class:`VAE` or a subclass); the VAE when it is not set."""
        if self.config.network.name is None:
            return VAE
        found = super().network_class()
        if not (isinstance(found, type) and issubclass(found, VAE)):
            raise ConfigError(f"{self.config.source}: [network] name: the autoencoder needs "
                              f"applications.autoencoder:VAE (or a subclass), got "
                              f"'{self.config.network.name}'")
        return found

    def build_network(self) -> Any:
        """The VAE for the training window; in ``sample`` inference it takes codes."""
        net, window = self.config.network, self.training_window()
        try:
            return self.network_class()(
                name="network", num_classes=self.channels, window=window,
                decode_codes=self.phase == "inference" and self.inference_type == "sample",
                spatial_rank=2 if window[2] == 1 else 3, activation=net.activation_function,
                weight_initializer=net.weight_initializer,
                weight_initializer_args=dict(net.weight_initializer_args or {}),
                bias_initializer=net.bias_initializer,
                bias_initializer_args=dict(net.bias_initializer_args or {}),
                decay=net.decay, reg_type=net.reg_type, seed=self.config.system.seed,
                **(net.params or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.config.source}: [network] params: cannot build "
                              f"'{net.name or 'VAE'}': {exc}") from exc

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """The negative variational lower bound of the batch's images (nats per image)."""
        return variational_lower_bound(unpack(outputs, batch["image"].shape), batch["image"])

    # -- inference ----------------------------------------------------------------
    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        suffix = {"encode": ".csv", "encode-decode": ".nii.gz", "sample": "_sample.nii.gz"}
        path = output_file(self, subject, suffix[self.inference_type])
        if path.exists() and not overwrite:
            raise DataError(f"{path} exists; pass --overwrite to replace it")
        prepared = self.preprocess(subject, with_label=False)
        volume, window = prepared.volumes["image"], self.training_window()
        shape = (1, *window, volume.shape[-1])
        if self.inference_type == "sample":
            parts = unpack(predict(self._prior_code(subject)), shape)
        else:
            zoomed = resize_to(volume, window, max(self.config.inputs[self.task.image[0]]
                                                   .interp_order, 0))
            parts = unpack(predict(zoomed[None]), shape)
        if progress is not None:
            progress(1, 1)
        if self.inference_type == "encode":
            means, logvars = (np.asarray(parts[k])[0] for k in ("posterior_means",
                                                                 "posterior_logvars"))
            names = ([f"mean_{i}" for i in range(len(means))]
                     + [f"logvar_{i}" for i in range(len(logvars))])
            aggregator = VectorAggregator(path, names, overwrite=overwrite)
            aggregator.add(subject.id, np.concatenate([means, logvars]))
            return aggregator.close()
        image = resize_to(np.asarray(parts["data_means"])[0], volume.shape[:3], 1)
        array = self.preprocessor.restore(image, prepared.geometry, labels=False)
        return write_image(array.astype(np.float32, copy=False), prepared.source.affine, path,
                           overwrite=overwrite, xform_codes=prepared.source.xform_codes)

    def _prior_code(self, subject: Subject) -> np.ndarray:
        """A code ``(1, 1, 1, 1, latent_size)`` from N(0, noise_stddev² I), seeded by
        ``system.seed`` and the subject id (the same file each run)."""
        size = int((self.config.network.params or {}).get("latent_size", LATENT_SIZE))
        stddev = self.task.noise_stddev or 1.0
        rng = np.random.default_rng([self.config.system.seed, zlib.crc32(subject.id.encode())])
        return rng.normal(0.0, stddev, (1, 1, 1, 1, size)).astype(np.float32)

    def evaluate(self, inferred: Mapping[str, Any], *, overwrite: bool) -> Any:
        raise NiftykitError("the autoencoder has no references to evaluate against; look at "
                            "the reconstructions, codes or samples in inference.save_seg_dir")
