"""Segmentation: voxel-wise labels from one or more image sources.

Training cuts windows of every image source (stacked as channels) and of
the label source at the same place, after the preprocessing of
:mod:`niftykit.io.preprocess` and, per sample, the augmentation of
:mod:`niftykit.io.augment`. Inference slides a grid of windows over each
preprocessed volume, stitches the network outputs back (NiftyNet's crop
aggregation), undoes the preprocessing and writes one label map (or
probability map, with ``output_prob``) per subject on the input file's exact
grid and affine, with the input's label codes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.application.base import BaseApplication, PredictFn
from niftykit.application.preparation import build_preprocessor, describe, fit_preprocessor
from niftykit.errors import ConfigError, DataError, ImageError
from niftykit.evaluation import evaluate_segmentations, resolve_metrics, summarise_metrics
from niftykit.io import Subject, write_image
from niftykit.io.preprocess import Preprocessor
from niftykit.loss import LOSSES
from niftykit.postprocess import DenseCRF
from niftykit.sampler import (BalancedSampler, GridAggregator, ResizeAggregator,
                              ResizeSampler, UniformSampler, WeightedSampler, flip_tta,
                              label_dtype, resize_to)

__all__ = ["SegmentationApplication"]

log = logging.getLogger("niftykit")


class SegmentationApplication(BaseApplication):
    """Multi-class segmentation (config section ``segmentation``)."""

    section = "segmentation"
    multiscale_inference = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        where = f"{config.source}: [segmentation]"
        if not self.task.image:
            raise ConfigError(f"{where} image: required (the input section(s) to segment)")
        if len(self.task.label) > 1:
            raise ConfigError(f"{where} label: give one input section, got {list(self.task.label)}")
        self.num_classes = int(self.task.num_classes)
        self._preprocessor: Preprocessor | None = None

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        sources = list(self.task.image)
        if phase == "inference":
            return sources
        if not self.task.label:
            raise ConfigError(f"{self.config.source}: [segmentation] label: required for {phase}")
        sampling = list(self.task.sampler[:1]) if phase == "training" else []
        return sources + [self.task.label[0]] + sampling

    @property
    def preprocessor(self) -> Preprocessor:
        """The run's preprocessing (built from the config on first use)."""
        if self._preprocessor is None:
            self._preprocessor = build_preprocessor(self.config, self.task, self.num_classes)
        return self._preprocessor

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Learn (training) or load the histogram landmarks and label mapping."""
        self._preprocessor = fit_preprocessor(self.config, self.task, self.preprocessor, phase,
                                              subjects)
        if phase != "evaluation":
            log.info("preprocessing: %s", describe(self._preprocessor))

    def preprocess(self, subject: Subject, with_label: bool) -> Any:
        return self.preprocessor(subject, with_label=with_label)

    def _window_sampler(self, rng: np.random.Generator) -> Any:
        """The ``network.window_sampling`` sampler for the training window."""
        window, kind = self.training_window(), self.config.network.window_sampling
        n = self.config.training.sample_per_volume
        if all(size > 0 for size in window):
            self.check_window(window, f"[inputs.{self.task.image[0]}] spatial_window_size")
        if kind == "resize":
            if not all(size > 0 for size in window):
                raise ConfigError(f"{self.config.source}: [inputs.{self.task.image[0]}] "
                                  "spatial_window_size: window_sampling: resize needs a full "
                                  f"window size, got {list(window)}")
            if self.output_window(window) != tuple(window):
                raise ConfigError(
                    f"{self.config.source}: [network] window_sampling: resize needs a network "
                    f"whose output has the window's size; '{self.config.network.name}' gives "
                    f"{list(self.output_window(window))} for {list(window)} (use padding: same, "
                    "or uniform/balanced/weighted sampling)")
            return ResizeSampler(window, n, self.volume_orders(), rng)
        if kind == "multiview":
            raise ConfigError(f"{self.config.source}: [network] window_sampling: multiview (2-D "
                              "views stacked as channels) is for classification; segmentation "
                              "takes uniform, balanced, weighted, resize or multiscale")
        if kind == "multiscale":
            if self.augmenter(rng).active:
                raise ConfigError(f"{self.config.source}: [training] augmentation: segmentation "
                                  "with window_sampling: multiscale does not augment yet; switch "
                                  "off flips, rotation, scaling, elastic, bias field, gamma, noise")
            return self.context_sampler(window, n, rng)
        if kind == "weighted":
            self._require_sampler_source(kind)
            return WeightedSampler(window, n, rng, map_name="sampler")
        if kind == "balanced":
            return BalancedSampler(window, n, rng,
                                   label_name="sampler" if self.task.sampler else "label")
        return UniformSampler(window, n, rng)

    def _require_sampler_source(self, kind: str) -> None:
        if not self.task.sampler:
            raise ConfigError(f"{self.config.source}: [segmentation] sampler: required for "
                              f"window_sampling: {kind} (the input section holding the map)")

    def volume_orders(self) -> dict:
        """Interpolation order of each window name (images: their ``interp_order``; labels: 0)."""
        image = max(self.config.inputs[self.task.image[0]].interp_order, 0)
        sampling = self.config.inputs[self.task.sampler[0]].interp_order if self.task.sampler else 0
        return {"image": image, "label": 0, "sampler": max(sampling, 0)}

    def make_sampler(self, rng: np.random.Generator,
                     phase: str = "training") -> Callable[[Mapping[str, np.ndarray]], list]:
        """Windows from a subject's volumes: sampled where ``window_sampling`` says and,
        in training, augmented in the same resampling that cuts them."""
        sampler = self._window_sampler(rng)
        augment = self.augmenter(rng) if phase == "training" else None
        if augment is None or not augment.active:
            return sampler
        orders = self.volume_orders()
        if isinstance(sampler, ResizeSampler):
            def resized(volumes: Mapping[str, np.ndarray]) -> list:
                windows = sampler(volumes)
                return [{**augment({k: v for k, v in w.items() if k != "location"},
                                   {k: orders[k] for k in w if k != "location"}),
                         "location": w["location"]} for w in windows]
            return resized

        def augmented(volumes: Mapping[str, np.ndarray]) -> list:
            kept = {k: v for k, v in volumes.items() if k not in sampler.exclude}
            kept_orders = {k: orders[k] for k in kept}
            return [augment.window(kept, kept_orders, box)
                    for box in sampler.locations(volumes, sampler.samples_per_volume)]
        return augmented

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        net = self.config.network
        if getattr(self.network_class(), "output_kind", "voxels") != "voxels":
            raise ConfigError(f"{self.config.source}: [network] name: '{net.name}' outputs one "
                              "vector per window; segmentation needs a voxel-wise network "
                              "(e.g. unet, dense_vnet, highres3dnet)")
        window = self.training_window()
        kwargs = dict(
            num_classes=self.num_classes, activation=net.activation_function,
            spatial_rank=2 if window[2] == 1 else 3,
            weight_initializer=net.weight_initializer,
            weight_initializer_args=dict(net.weight_initializer_args or {}),
            bias_initializer=net.bias_initializer,
            bias_initializer_args=dict(net.bias_initializer_args or {}),
            decay=net.decay, reg_type=net.reg_type)
        kwargs.update(net.params or {})
        try:
            return self.network_class()(name="network", **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.config.source}: [network] params: cannot build "
                              f"'{net.name}': {exc}") from exc

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """The configured loss; labels are centre-cropped to the output of a valid-padded network."""
        labels = _crop_like(batch["label"], outputs)
        return LOSSES.get(self.config.training.loss_type)(outputs, labels)

    # -- inference ----------------------------------------------------------------
    def output_path(self, subject: Subject) -> Path:
        """``<save_seg_dir>/<subject id><output_postfix>.nii.gz``; an id cannot leave the folder."""
        folder = Path(self.config.inference.save_seg_dir)
        name = f"{subject.id}{self.config.inference.output_postfix}.nii.gz"
        if Path(name).name != name or name.startswith("."):
            raise DataError(f"subject id '{subject.id}' cannot name a file in {folder}; "
                            "rename the input file (no '/', '\\\\' or leading '.')")
        return folder / name

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        path = self.output_path(subject)
        if path.exists() and not overwrite:
            raise ImageError(f"{path} exists; pass --overwrite to replace it")
        crf = self._crf()
        prepared = self.preprocess(subject, with_label=False)
        volume = prepared.volumes["image"]
        if self.config.inference.tta == "flip":
            predict = flip_tta(predict)
        if self.config.network.window_sampling == "resize":
            result = self._infer_resized(volume, predict, progress)
        else:
            result = self._infer_grid(volume, predict, progress)
        if crf is not None:
            result = self._refine(crf, result, volume, prepared.geometry)
        if self.task.output_prob:
            array = self.preprocessor.restore(result, prepared.geometry, labels=False)
        else:
            array = self.preprocessor.restore(result.astype(np.int32, copy=False),
                                              prepared.geometry, labels=True)
            if self.preprocessor.label_mapping is None:
                array = array.astype(label_dtype(self.num_classes), copy=False)
        return write_image(array, prepared.source.affine, path, overwrite=overwrite,
                           xform_codes=prepared.source.xform_codes)

    def _outputs(self, predict: PredictFn, windows: np.ndarray) -> np.ndarray:
        outputs = predict(windows)
        return _softmax(outputs) if self.task.softmax else outputs

    def _infer_grid(self, volume: np.ndarray, predict: PredictFn,
                    progress: Optional[Callable[[int, int], None]]) -> np.ndarray:
        """Sliding windows, streamed into the aggregator: class indices ``(x, y, z)``
        (only a slab of probabilities is ever held) or probabilities ``(x, y, z, C)``."""
        inference = self.config.inference
        window = self.inference_window(volume.shape[:3])
        sampler = self.grid_sampler(volume, window, self.inference_border(window))
        aggregator = GridAggregator(
            sampler, self.num_classes, mode=inference.aggregation,
            output="probabilities" if self._needs_probabilities() else "labels",
            fill_constant=inference.fill_constant)
        done = 0
        for windows, locations in sampler.batches(self.config.network.batch_size):
            aggregator.add(self._outputs(predict, windows), locations)
            done += len(windows)
            if progress is not None:
                progress(done, len(sampler))
        return aggregator.result()

    def _infer_resized(self, volume: np.ndarray, predict: PredictFn,
                       progress: Optional[Callable[[int, int], None]]) -> np.ndarray:
        """The whole volume zoomed to the training window, and the output zoomed back."""
        window = self.training_window()
        zoomed = resize_to(volume, window, self.volume_orders()["image"])
        aggregator = ResizeAggregator(volume.shape[:3], self.num_classes, order=1)
        aggregator.add(self._outputs(predict, zoomed[None]))
        if progress is not None:
            progress(1, 1)
        result = aggregator.result()
        return result if self._needs_probabilities() else np.argmax(result, axis=-1)

    # -- CRF post-processing (inference.crf) ---------------------------------------
    def _needs_probabilities(self) -> bool:
        """Whether inference keeps the probability volume (``output_prob``, or a CRF after it)."""
        return bool(self.task.output_prob) or self.config.inference.crf == "dense"

    def _crf(self) -> Optional[DenseCRF]:
        """The ``inference.crf: dense`` post-processing, or None."""
        inference = self.config.inference
        if inference.crf != "dense":
            return None
        if not self.task.softmax:
            raise ConfigError(f"{self.config.source}: [inference] crf: dense needs class "
                              "probabilities; set [segmentation] softmax: true")
        return DenseCRF(inference.crf_iterations, inference.crf_smooth_weight,
                        inference.crf_smooth_sigma_mm, inference.crf_appearance_weight,
                        inference.crf_appearance_sigma_mm,
                        inference.crf_appearance_sigma_intensity)

    def _refine(self, crf: DenseCRF, probabilities: np.ndarray, volume: np.ndarray,
                geometry: Any) -> np.ndarray:
        """The CRF on the preprocessed grid inside the volume padding (``volume``'s
        intensities, spacing from the grid's affine); the padding keeps the network's
        output. Returns probabilities ``(x, y, z, C)`` with ``output_prob``, else labels."""
        spacing = np.linalg.norm(np.asarray(geometry.affine)[:3, :3], axis=0)
        inner = tuple(slice(before, size - after) for before, after, size in
                      zip(geometry.pad_before, geometry.pad_after, volume.shape[:3]))
        start = time.perf_counter()
        refined = crf(probabilities[inner], volume[inner], spacing)
        log.info("dense CRF: %d iterations on %s voxels (spacing %s mm) in %.1f s",
                 crf.iterations, "x".join(str(s) for s in refined.shape[:3]),
                 np.round(spacing, 2).tolist(), time.perf_counter() - start)
        if self.task.output_prob:
            probabilities[inner] = refined
            return probabilities
        labels = np.argmax(probabilities, axis=-1).astype(label_dtype(self.num_classes))
        labels[inner] = np.argmax(refined, axis=-1)
        return labels

    # -- evaluation ---------------------------------------------------------------
    def evaluation_labels(self) -> List[int]:
        """The label codes scored: the learnt codes (with label_normalisation) or 1..K−1."""
        mapping = self.preprocessor.label_mapping
        codes = [int(c) for c in mapping.codes] if mapping is not None else range(self.num_classes)
        return [c for c in codes if c != 0]

    def evaluate(self, inferred: Mapping[str, Path], *, overwrite: bool) -> Tuple[Path, dict]:
        """``evaluation.evaluations`` (default Dice) per subject and unit of the inferred
        label maps against the references, distances in mm.

        Args:
            inferred: subject id -> inferred label map (from ``inferred.csv``).

        Returns:
            The CSV written and the mean of each metric per unit (label, foreground or
            connected component, ``segmentation.evaluation_units``).
        """
        if self.task.output_prob:
            raise ConfigError(f"{self.config.source}: [segmentation] output_prob: evaluation "
                              "needs label maps; infer again with output_prob: false")
        references = {s.id: s for s in self.subjects("evaluation")}
        pairs = [(sid, path, references[sid].paths[self.task.label[0]])
                 for sid, path in sorted(inferred.items()) if sid in references]
        if not pairs:
            raise DataError(f"no reference label for any of the {len(inferred)} inferred subjects "
                            f"(label source '{self.task.label[0]}')")
        out = Path(self.config.evaluation.save_csv_dir) / "evaluation.csv"
        if out.exists() and not overwrite:
            raise DataError(f"{out} exists; pass --overwrite to replace it")
        self.prepare("evaluation", [])
        metrics = tuple(self.config.evaluation.evaluations) or ("dice",)
        try:
            resolve_metrics(metrics)
        except ValueError as exc:
            raise ConfigError(f"{self.config.source}: [evaluation] evaluations: {exc}") from None
        rows = evaluate_segmentations(pairs, self.evaluation_labels(), out, overwrite=True,
                                      metrics=metrics, units=self.task.evaluation_units)
        return out, summarise_metrics(rows)


def _crop_like(labels: Any, outputs: Any) -> Any:
    """Centre-crop ``labels`` (b, x, y, z, ...) to the spatial shape of ``outputs``."""
    have, want = labels.shape[1:4], outputs.shape[1:4]
    if tuple(have) == tuple(want):
        return labels
    slices = [slice(None)]
    for h, w in zip(have, want):
        lo = (int(h) - int(w)) // 2
        slices.append(slice(lo, lo + int(w)))
    return labels[tuple(slices)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
