"""Regression (NiftyNet's ``net_regress``): of an image voxel by voxel, or of values per image.

The ``output`` input section decides the kind:

* **images** (NiftyNet): ``output`` images on each subject's image grid; the
  network is voxel-wise with one output channel per ``output`` channel (1, as
  NiftyNet; ``network.params.num_classes`` for more). The target and the optional
  ``weight`` map (voxel weights of the loss) are reoriented, resampled and
  padded with the image but not normalised. ``loss_border`` voxels at each
  window edge are left out of the loss. Inference slides a grid of windows
  (``inference.aggregation``: crop, mean or gaussian), undoes the
  preprocessing and writes a float32 image on the input's grid,
  ``<save_seg_dir>/<id><output_postfix>.nii.gz``.
* **values** (niftykit): an ``output`` section with a ``csv_data_file`` of
  ``subject_id,value[,value...]`` rows; the network gives one vector per window
  (``regression_head``, ``resnet``...), one entry per column. Training windows
  are resized images or random windows as for classification; inference writes
  ``<save_seg_dir>/<id><output_postfix>.csv`` (``subject_id,<columns>``), the mean
  over the grid windows unless resized.

``training.loss_type`` defaults to ``L2Loss`` (NiftyNet's global default ``Dice``
is a segmentation loss). Evaluation: ``mse``, ``rmse``, ``mae``, ``r2`` per subject
(images) or over subjects per column (values).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.application.base import BaseApplication, PredictFn
from niftykit.application.per_image import (augmented_sampler, check_network_kind,
                                            check_sampling, images_only, output_file,
                                            predict_vector, resolve_loss, with_targets)
from niftykit.application.preparation import build_preprocessor, describe, fit_preprocessor
from niftykit.errors import ConfigError, DataError
from niftykit.evaluation import mae, mse, r2, rmse
from niftykit.io import Subject, check_same_grid, read_image, write_csv, write_image
from niftykit.io.discovery import DataTable, read_data_csv
from niftykit.io.geometry import apply_geometry
from niftykit.io.preprocess import Preprocessor
from niftykit.loss import LOSSES
from niftykit.sampler import (GridAggregator, GridSampler, ResizeAggregator, ResizeSampler,
                              UniformSampler, VectorAggregator, flip_tta, resize_to)

__all__ = ["RegressionApplication"]

log = logging.getLogger("niftykit")

METRICS = {"mse": mse, "rmse": rmse, "mae": mae, "r2": r2}
LOSS_TYPES = ("L1Loss", "L2Loss", "RMSE", "MAE", "Huber", "SmoothL1", "Cosine")
_INTENSITY_AUGMENTATION = ("bias_field_range", "gamma_range", "noise_std")


class RegressionApplication(BaseApplication):
    """Voxel-wise or per-image regression (config section ``regression``)."""

    section = "regression"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        where = f"{config.source}: [regression]"
        if not self.task.image:
            raise ConfigError(f"{where} image: required (the input section(s) to regress from)")
        for key in ("output", "weight"):
            if len(getattr(self.task, key)) > 1:
                raise ConfigError(f"{where} {key}: give one input section, "
                                  f"got {list(getattr(self.task, key))}")
        output = self.task.output[0] if self.task.output else None
        #: True when the targets are per-image values (``output`` is a ``csv_data_file``)
        self.per_image = bool(output and config.inputs[output].csv_data_file)
        if self.per_image and self.task.weight:
            raise ConfigError(f"{where} weight: a voxel weight map needs output images; "
                              f"[inputs.{output}] is a csv_data_file")
        self.loss_name = resolve_loss(config, LOSS_TYPES, "L2Loss", "regression")
        self._preprocessor: Optional[Preprocessor] = None
        self._table: Optional[DataTable] = None

    # -- data -------------------------------------------------------------------
    def input_sources(self, phase: str) -> List[str]:
        sources = list(self.task.image)
        if phase == "inference":
            return sources
        if not self.task.output:
            raise ConfigError(f"{self.config.source}: [regression] output: required for {phase} "
                              "(the input section holding the targets)")
        weight = list(self.task.weight) if phase == "training" else []
        return sources + [self.task.output[0]] + weight

    @property
    def table(self) -> DataTable:
        """The per-image targets (``csv_data_file`` of the ``output`` section), read once."""
        if self._table is None:
            name = self.task.output[0]
            self._table = read_data_csv(self.config.inputs[name].csv_data_file, source=name)
        return self._table

    @property
    def num_outputs(self) -> int:
        """Outputs per voxel or per image: ``network.params.num_classes`` if given, else the
        columns of the targets' CSV (values) or 1 (images, as NiftyNet)."""
        given = (self.config.network.params or {}).get("num_classes")
        if given is not None:
            return int(given)
        if self.per_image and Path(self.config.inputs[self.task.output[0]].csv_data_file).exists():
            return len(self.table.columns)
        return 1

    def columns(self) -> List[str]:
        """Names of the per-image values (the CSV's header, else ``value``/``value_<i>``)."""
        name = self.task.output[0]
        if Path(self.config.inputs[name].csv_data_file).exists():
            columns = list(self.table.columns)
            if len(columns) == self.num_outputs and "subject_id" not in columns \
                    and len(set(columns)) == len(columns):
                return columns
        count = self.num_outputs
        return ["value"] if count == 1 else [f"value_{i}" for i in range(count)]

    @property
    def preprocessor(self) -> Preprocessor:
        """The images' preprocessing (targets are only moved to the images' grid)."""
        if self._preprocessor is None:
            self._preprocessor = build_preprocessor(self.config, images_only(self.task), 2)
        return self._preprocessor

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Learn (training) or load the histogram landmarks of the images."""
        self._preprocessor = fit_preprocessor(self.config, images_only(self.task),
                                              self.preprocessor, phase, subjects)
        if phase != "evaluation":
            log.info("preprocessing: %s", describe(self._preprocessor))

    def preprocess(self, subject: Subject, with_label: bool) -> Any:
        """Images as configured; with targets: ``output`` ``(k,)`` values, or ``output`` and
        ``weight`` volumes on the images' grid (zero weight in the padding)."""
        prepared = self.preprocessor(subject, with_label=False)
        if not with_label:
            return prepared
        if self.per_image:
            values = np.asarray(self.table.row(subject.id), np.float32)
            if values.size != self.num_outputs:
                raise DataError(f"{self.table.path}: subject '{subject.id}' has {values.size} "
                                f"values; the network predicts {self.num_outputs} "
                                "(network.params.num_classes)")
            prepared.volumes["output"] = values
            return prepared
        volumes = prepared.volumes
        volumes["output"] = self._on_grid(subject, self.task.output[0], prepared,
                                          self.num_outputs, self.preprocessor.pad_mode)
        if self.task.weight:
            volumes["weight"] = self._on_grid(subject, self.task.weight[0], prepared, 1, "constant")
        return prepared

    def _on_grid(self, subject: Subject, source: str, prepared: Any, channels: int,
                 pad_mode: str) -> np.ndarray:
        image = read_image(subject.paths[source], "image",
                           nonfinite=self.config.inputs[source].replace_nonfinite)
        check_same_grid(prepared.source, image, atol=self.config.system.grid_tolerance_mm)
        if image.num_channels != channels:
            raise DataError(f"{image.path}: {image.num_channels} channels; the network predicts "
                            f"{channels} (set network.params.num_classes for [regression] "
                            f"{'weight: 1' if source in self.task.weight else 'output'})")
        order = max(self.config.inputs[source].interp_order, 0)
        return apply_geometry(image.array, prepared.geometry, order, pad_mode)

    def volume_orders(self) -> Dict[str, int]:
        """Interpolation order of each volume (each source's ``interp_order``)."""
        inputs = self.config.inputs
        orders = {"image": max(inputs[self.task.image[0]].interp_order, 0)}
        if self.task.output and not self.per_image:
            orders["output"] = max(inputs[self.task.output[0]].interp_order, 0)
        if self.task.weight:
            orders["weight"] = max(inputs[self.task.weight[0]].interp_order, 0)
        return orders

    def make_sampler(self, rng: np.random.Generator, phase: str = "training") -> Callable:
        """Training windows (augmented in training) with their targets."""
        kind = "vector" if self.per_image else "voxels"
        check_network_kind(self, kind, f"regression with {'values' if self.per_image else 'images'}"
                           " as targets", "regression_head, resnet" if self.per_image
                           else "unet, highres3dnet")
        window, sampling = check_sampling(self, "regression")
        if not self.per_image:
            self._check_voxel_training(window, sampling)
        orders, n = self.volume_orders(), self.config.training.sample_per_volume
        sampler = (ResizeSampler(window, n, orders, rng) if sampling == "resize"
                   else UniformSampler(window, n, rng))
        augment = self.augmenter(rng) if phase == "training" else None
        windows = augmented_sampler(sampler, augment, orders)
        return with_targets(windows, ("output",)) if self.per_image else windows

    def _check_voxel_training(self, window: Sequence[int], sampling: str) -> None:
        source = self.config.source
        training = self.config.training
        for key in _INTENSITY_AUGMENTATION:
            if getattr(training, key) is not None:
                raise ConfigError(f"{source}: [training] {key}: not supported yet for regression "
                                  "of images (it would change the target images too)")
        if sampling == "resize" and self.output_window(window) != tuple(window):
            raise ConfigError(f"{source}: [network] window_sampling: resize needs a network whose "
                              f"output has the window's size; '{self.config.network.name}' gives "
                              f"{list(self.output_window(window))} for {list(window)}")
        border = self.task.loss_border
        out = self.output_window(window)
        if any(size > 1 and size <= 2 * border for size in out):
            raise ConfigError(f"{source}: [regression] loss_border: {border} leaves nothing of "
                              f"the network's {list(out)} output (window {list(window)})")

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        check_network_kind(self, "vector" if self.per_image else "voxels", "regression",
                           "regression_head" if self.per_image else "unet")
        window = self.training_window()
        return self.instantiate_network(self.num_outputs, 2 if window[2] == 1 else 3)

    def loss(self, outputs: Any, batch: Mapping[str, Any]) -> Any:
        """``training.loss_type`` of the outputs against ``output`` (voxels: centre-cropped to
        the network's output, minus ``loss_border``; weighted by ``weight`` if given)."""
        target, weight = batch["output"], batch.get("weight")
        if not self.per_image:
            border = self.task.loss_border
            target = _crop(target, outputs.shape[1:4], 0)
            weight = _crop(weight, outputs.shape[1:4], 0) if weight is not None else None
            if border:
                shape = outputs.shape[1:4]
                outputs, target = _crop(outputs, shape, border), _crop(target, shape, border)
                weight = _crop(weight, shape, border) if weight is not None else None
        return LOSSES.get(self.loss_name)(outputs, target, weight)

    # -- inference ----------------------------------------------------------------
    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        path = output_file(self, subject, ".csv" if self.per_image else ".nii.gz")
        if path.exists() and not overwrite:
            raise DataError(f"{path} exists; pass --overwrite to replace it")
        prepared = self.preprocess(subject, with_label=False)
        volume = prepared.volumes["image"]
        if self.per_image:
            values = predict_vector(self, volume, predict, lambda v: v, progress)
            aggregator = VectorAggregator(path, self.columns(), overwrite=overwrite)
            aggregator.add(subject.id, values)
            return aggregator.close()
        if self.config.inference.tta == "flip":
            predict = flip_tta(predict)
        if self.config.network.window_sampling == "resize":
            zoomed = resize_to(volume, self.training_window(), self.volume_orders()["image"])
            aggregator = ResizeAggregator(volume.shape[:3], self.num_outputs, order=1)
            aggregator.add(predict(zoomed[None]))
            if progress is not None:
                progress(1, 1)
            result = aggregator.result()
        else:
            result = self._infer_grid(volume, predict, progress)
        array = self.preprocessor.restore(result, prepared.geometry, labels=False)
        return write_image(array.astype(np.float32, copy=False), prepared.source.affine, path,
                           overwrite=overwrite, xform_codes=prepared.source.xform_codes)

    def _infer_grid(self, volume: np.ndarray, predict: PredictFn,
                    progress: Optional[Callable[[int, int], None]]) -> np.ndarray:
        inference = self.config.inference
        window = self.inference_window(volume.shape[:3])
        sampler = GridSampler(volume, window, self.inference_border(window),
                              overlap=inference.overlap)
        aggregator = GridAggregator(sampler, self.num_outputs, mode=inference.aggregation,
                                    output="probabilities", fill_constant=inference.fill_constant)
        done = 0
        for windows, locations in sampler.batches(self.config.network.batch_size):
            aggregator.add(predict(windows), locations)
            done += len(windows)
            if progress is not None:
                progress(done, len(sampler))
        return aggregator.result()

    # -- evaluation ---------------------------------------------------------------
    def metrics(self) -> List[str]:
        """``evaluation.evaluations`` (default mse, rmse, mae, r2)."""
        names = [n.lower() for n in self.config.evaluation.evaluations] or list(METRICS)
        for name in names:
            if name not in METRICS:
                raise ConfigError(f"{self.config.source}: [evaluation] evaluations: '{name}' is "
                                  f"not a regression metric ({', '.join(METRICS)})")
        return list(dict.fromkeys(names))

    def evaluate(self, inferred: Mapping[str, Path], *, overwrite: bool) -> Tuple[Path, dict]:
        """Regression errors of the inferred outputs against the targets.

        Images: one row per subject in ``<save_csv_dir>/evaluation.csv`` with each metric
        over the subject's voxels (in image units). Values: one row per subject with
        reference, prediction and error per column, and the metrics over subjects per
        column in ``evaluation_summary.csv``.

        Returns:
            The per-subject CSV and ``{unit: {metric: value}}`` (``all`` subjects, or each
            column of per-image values).
        """
        metrics = self.metrics()
        folder = Path(self.config.evaluation.save_csv_dir)
        out, summary_csv = folder / "evaluation.csv", folder / "evaluation_summary.csv"
        for path in (out, summary_csv) if self.per_image else (out,):
            if path.exists() and not overwrite:
                raise DataError(f"{path} exists; pass --overwrite to replace it")
        references = {s.id: s for s in self.subjects("evaluation")}
        cases = [(sid, Path(path)) for sid, path in sorted(inferred.items()) if sid in references]
        if not cases:
            raise DataError(f"no reference output for any of the {len(inferred)} inferred "
                            f"subjects (output source '{self.task.output[0]}')")
        if self.per_image:
            return out, self._evaluate_values(cases, metrics, out, summary_csv)
        rows = [self._score_image(sid, path, references[sid], metrics) for sid, path in cases]
        write_csv(out, rows, header=["subject_id", *metrics], overwrite=True)
        return out, {"all": {m: float(np.nanmean([r[i + 1] for r in rows]))
                             for i, m in enumerate(metrics)}}

    def _score_image(self, sid: str, path: Path, subject: Subject, metrics: Sequence[str]) -> list:
        predicted = read_image(path, "image")
        reference = read_image(subject.paths[self.task.output[0]], "image")
        check_same_grid(reference, predicted, atol=self.config.system.grid_tolerance_mm)
        if predicted.array.shape != reference.array.shape:
            raise DataError(f"{path}: shape {predicted.array.shape} differs from the reference "
                            f"{reference.path} {reference.array.shape}")
        return [sid] + [METRICS[m](predicted.array, reference.array) for m in metrics]

    def _evaluate_values(self, cases: Sequence[Tuple[str, Path]], metrics: Sequence[str],
                         out: Path, summary_csv: Path) -> dict:
        columns = self.columns()
        predicted = np.array([_read_values(path, sid, columns) for sid, path in cases])
        reference = np.array([self.table.row(sid) for sid, _ in cases], np.float64)
        if reference.shape != predicted.shape:
            raise DataError(f"{self.table.path}: {reference.shape[1]} values per subject, the "
                            f"outputs have {predicted.shape[1]}")
        rows = [[sid] + [f"{v:.6g}" for pair in zip(ref, pred, pred - ref) for v in pair]
                for (sid, _), ref, pred in zip(cases, reference, predicted)]
        header = ["subject_id"] + [f"{c}_{k}" for c in columns
                                   for k in ("reference", "predicted", "error")]
        summary = {c: {m: METRICS[m](predicted[:, i], reference[:, i]) for m in metrics}
                   for i, c in enumerate(columns)}
        write_csv(out, rows, header=header, overwrite=True)
        write_csv(summary_csv, [[c, len(cases), *(f"{v:.6g}" for v in s.values())]
                                for c, s in summary.items()],
                  header=["column", "n_subjects", *metrics], overwrite=True)
        return summary


def _read_values(path: Path, subject: str, columns: Sequence[str]) -> List[float]:
    """A subject's predicted values from a per-image regression output CSV."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            row = next(r for r in csv.DictReader(handle) if r.get("subject_id") == subject)
        return [float(row[c]) for c in columns]
    except (OSError, StopIteration, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a regression output for subject '{subject}' (expected "
                        f"subject_id,{','.join(columns)}; {exc!r})") from None


def _crop(values: Any, shape: Sequence[int], border: int) -> Any:
    """Centre-crop ``values`` ``(b, x, y, z, ...)`` to ``shape`` minus ``border`` at each
    end of every axis longer than one voxel."""
    slices = [slice(None)]
    for have, want in zip(values.shape[1:4], shape):
        have, want = int(have), int(want)
        cut = border if want > 1 else 0
        lo = (have - want) // 2 + cut
        slices.append(slice(lo, lo + want - 2 * cut))
    return values[tuple(slices)]
