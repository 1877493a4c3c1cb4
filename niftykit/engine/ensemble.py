"""Ensembles: several trained models fused into one output per subject.

``niftykit infer --model A --model B [--weights 0.7 0.3] [--fusion mean|vote]``
runs each model as single-model inference does - its own preprocessing
(normalisation landmarks and label mapping from its export or model_dir), its
own window, its own inverse geometry - and fuses the class probabilities on the
INPUT image's grid, so that models trained at different resolutions or with
different windows fuse voxel for voxel. Segmentation and classification.

Fusion (:class:`Fusion`), with weights ``w_m`` normalised to sum to 1:

* ``mean`` (default): ``p(c) = sum_m w_m p_m(c)``, the weighted mean of the
  probabilities (Lakhani & Sundaram, Radiology 284(2):574-582, 2017: two CNNs
  averaged, AUC 0.99 for tuberculosis on chest radiographs);
* ``vote``: ``p(c) = sum_m w_m [argmax_k p_m(k) = c]``, the weighted share of
  the models whose label is ``c`` (Zhao et al., Medical Image Analysis
  43:98-111, 2018: the segmentations of axial, coronal and sagittal models
  fused by voting).

The label is ``argmax_c p(c)``; a tie (equal fused score, e.g. two equally
weighted models disagreeing in a vote) goes to the lowest class index, so
background wins a split vote. A model's vote is the argmax of its probabilities
on the input grid (where a model resamples, this can differ at boundary voxels
from its own label output, whose argmax is taken before resampling back).
``output_prob`` writes ``p`` (for ``vote``: the vote shares). Each model's own post-processing (``inference.crf``,
``inference.tta``) happens before the fusion.

Each model writes its probabilities to a temporary folder inside the output
folder (removed afterwards); the fused outputs are written atomically, named
and listed in ``inferred.csv`` as single-model inference does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from niftykit.engine.checkpoint import check_checkpoint
from niftykit.engine.inference import INFERRED_CSV, Predictor
from niftykit.engine.stages import attach_stages
from niftykit.engine.progress import ProgressBar
from niftykit.engine.runtime import import_tensorflow
from niftykit.errors import ConfigError, DataError, NiftykitError
from niftykit.io import Subject, read_image, write_csv, write_image

__all__ = ["Fusion", "fuse", "normalise_weights", "member_config", "infer_ensemble", "FUSIONS"]

log = logging.getLogger("niftykit")

FUSIONS = ("mean", "vote")
#: what each application writes per subject
SUFFIXES = {"segmentation": ".nii.gz", "classification": ".csv"}
#: [inference] keys that stay each model's own when -c DATA gives the rest
MODEL_INFERENCE_KEYS = ("spatial_window_size", "border")


# -- the maths ----------------------------------------------------------------------------
def normalise_weights(weights: Optional[Sequence[float]], n: int) -> np.ndarray:
    """Per-model weights summing to 1 (equal when None).

    Raises:
        ConfigError: not one weight per model, a negative or non-finite weight, or all zero.
    """
    if weights is None:
        return np.full(n, 1.0 / n)
    values = np.asarray(weights, np.float64)
    if values.shape != (n,):
        raise ConfigError(f"--weights: give one weight per --model ({n}), got {values.size}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ConfigError(f"--weights: expected non-negative numbers, not all zero, got "
                          f"{' '.join(f'{v:g}' for v in values)}")
    return values / values.sum()


class Fusion:
    """A running fusion of class probabilities ``(..., C)``, one model at a time.

    Args:
        fusion: ``mean`` (weighted mean of probabilities) or ``vote`` (weighted share of
            the models whose argmax is each class).
    """

    def __init__(self, fusion: str = "mean") -> None:
        if fusion not in FUSIONS:
            raise ConfigError(f"--fusion: expected one of {', '.join(FUSIONS)}, got '{fusion}'")
        self.fusion = fusion
        self.scores: Optional[np.ndarray] = None

    def add(self, probabilities: np.ndarray, weight: float) -> None:
        """Add one model's ``(..., C)`` probabilities (or logits, for ``vote``) with its weight."""
        probabilities = np.asarray(probabilities)
        if self.scores is not None and probabilities.shape != self.scores.shape:
            raise ValueError(f"fusion: shape {probabilities.shape} differs from "
                             f"{self.scores.shape}")
        if self.fusion == "vote":
            labels = np.argmax(probabilities, axis=-1)
            term = labels[..., None] == np.arange(probabilities.shape[-1])
        else:
            term = probabilities
        term = np.float32(weight) * term.astype(np.float32)
        self.scores = term if self.scores is None else self.scores + term

    def result(self) -> np.ndarray:
        """The fused scores ``(..., C)`` (float32; they sum to 1 with normalised weights)."""
        if self.scores is None:
            raise ValueError("fusion: no model added")
        return self.scores

    def labels(self) -> np.ndarray:
        """``argmax`` of the fused scores ``(...)``; ties go to the lowest class index."""
        return np.argmax(self.result(), axis=-1)


def fuse(probabilities: Sequence[np.ndarray], weights: Optional[Sequence[float]] = None,
         fusion: str = "mean") -> np.ndarray:
    """The fused scores ``(..., C)`` of several models' ``(..., C)`` probabilities
    (weights normalised; equal when None). See :class:`Fusion`."""
    fused = Fusion(fusion)
    for array, weight in zip(probabilities, normalise_weights(weights, len(probabilities))):
        fused.add(array, float(weight))
    return fused.result()


# -- the models ---------------------------------------------------------------------------
def member_config(spec: Any, data: Any = None, overrides: Sequence[str] = ()) -> Any:
    """The inference config of one ``--model``: an export folder or a training config
    (YAML/INI whose ``system.model_dir`` holds the checkpoints).

    With ``data`` (``-c DATA``), its input locations, split file and ``[inference]``
    section apply, as for single-model ``--model``, except the model's own window
    (``inference.spatial_window_size``, ``border``).

    Raises:
        ConfigError: neither an export folder nor a config file, or ``data`` lacks one of
            the model's image sources.
    """
    from niftykit.config import load_config
    from niftykit.engine.export import DATA_KEYS, export_config
    path = Path(spec).expanduser()
    if path.is_dir():
        own = export_config(path, None, overrides)
        config = export_config(path, data, overrides) if data is not None else own
    elif path.is_file():
        own = load_config(path, () if data is not None else overrides)
        config = own if data is None else _with_data(load_config(path), data, DATA_KEYS, spec)
    else:
        raise ConfigError(f"--model {spec}: no such export folder or config file")
    for key in MODEL_INFERENCE_KEYS:
        setattr(config.inference, key, getattr(own.inference, key))
    return config


def _with_data(config: Any, data: Any, keys: Sequence[str], spec: Any) -> Any:
    """A training config with the data locations of ``data`` (as for exports)."""
    task = getattr(config, config.application, None)
    for name in list(getattr(task, "image", None) or []):
        if name not in data.inputs:
            raise ConfigError(f"{data.source}: [inputs] {name}: the model {spec} reads it; "
                              "define it with its path_to_search")
        for key in keys:
            setattr(config.inputs[name], key, getattr(data.inputs[name], key))
    config.inference = dataclasses.replace(data.inference)
    config.system.dataset_split_file = data.system.dataset_split_file
    config.system.strict_subjects = data.system.strict_subjects
    return config


def _codes(app: Any) -> List[int]:
    """The label codes of an application's class indices."""
    mapping = getattr(app, "mapping", None)
    if mapping is None and app.section == "segmentation":
        mapping = app.preprocessor.label_mapping
    if mapping is None:
        return list(range(int(app.num_classes)))
    return [int(c) for c in mapping.codes]


def _check_agreement(apps: Sequence[Any], names: Sequence[str], fusion: str) -> None:
    """The models must write the same kind of output with the same classes.

    Raises:
        ConfigError: one line naming the model that differs from the first, and how.
    """
    def facts(app: Any) -> List[Tuple[str, Any]]:
        return [("application", app.section), ("num_classes", int(app.num_classes)),
                ("label codes", _codes(app)),
                ("image sources", list(app.input_sources("inference")))]
    lead = facts(apps[0])
    for app, name in zip(apps, names):
        for (what, mine), (_, theirs) in zip(facts(app), lead):
            if mine != theirs:
                raise ConfigError(f"--model {name}: {what} is {mine}, but --model {names[0]} "
                                  f"has {theirs}; the models of an ensemble must agree")
        if fusion == "mean" and app.section == "segmentation" and not app.task.softmax:
            raise ConfigError(f"--model {name}: segmentation.softmax is false (its outputs are "
                              "not probabilities); --fusion mean needs it true, or use "
                              "--fusion vote")


# -- inference ----------------------------------------------------------------------------
def _output_path(folder: Path, subject: Subject, postfix: str, suffix: str) -> Path:
    name = f"{subject.id}{postfix}{suffix}"
    if Path(name).name != name or name.startswith("."):
        raise DataError(f"subject id '{subject.id}' cannot name a file in {folder}; "
                        "rename the input file (no '/', '\\\\' or leading '.')")
    return folder / name


def _check_kind(apps: Sequence[Any], names: Sequence[str]) -> None:
    for app, name in zip(apps, names):
        if app.section not in SUFFIXES:
            raise ConfigError(f"--model {name}: application '{app.section}': ensembles fuse "
                              "segmentation and classification models")


def _redirect(apps: Sequence[Any], tmp: Path) -> List[Tuple[Any, ...]]:
    """Each model writes its probabilities, unadorned, to ``tmp/model<k>``; returns the
    settings replaced (for :func:`_restore`)."""
    saved = []
    for number, app in enumerate(apps, 1):
        inference = app.config.inference
        saved.append((inference.save_seg_dir, inference.output_postfix, app.task.output_prob))
        inference.save_seg_dir, inference.output_postfix = tmp / f"model{number}", ""
        app.task.output_prob = True
    return saved


def _restore(apps: Sequence[Any], saved: Sequence[Tuple[Any, ...]]) -> None:
    for app, (folder, postfix, output_prob) in zip(apps, saved):
        app.config.inference.save_seg_dir, app.config.inference.output_postfix = folder, postfix
        app.task.output_prob = output_prob


def _probabilities(app: Any, path: Path, subject: Subject) -> Tuple[np.ndarray, Any]:
    """One model's written probabilities ``(x, y, z, C)`` or ``(C,)``, and the image read
    (for its grid) or None."""
    if app.section == "classification":
        _, probabilities = app.read_prediction(path, subject.id)
        return np.asarray(probabilities, np.float32), None
    image = read_image(path)
    return image.array, image


def _write(lead: Any, result: Tuple[Fusion, Any], path: Path, subject: Subject,
           output_prob: bool, overwrite: bool) -> Path:
    """The fused output (and the grid image), written as the lead model's application
    writes its own."""
    fused, image = result
    labels = fused.labels()
    if lead.section == "classification":
        row: List[Any] = [subject.id, _codes(lead)[int(labels)]]
        header = ["subject_id", "label"]
        if output_prob:
            row += [f"{p:.6g}" for p in fused.result()]
            header += lead.class_columns()
        return write_csv(path, [row], header=header, overwrite=overwrite)
    if output_prob:
        array = fused.result()
    elif lead.preprocessor.label_mapping is not None:
        array = lead.preprocessor.label_mapping.invert(labels)
    else:
        from niftykit.sampler import label_dtype
        array = labels.astype(label_dtype(int(lead.num_classes)))
    return write_image(array, image.affine, path, overwrite=overwrite,
                       xform_codes=image.xform_codes)


def _make_tmp(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=folder, prefix=".ensemble-"))
    except OSError as exc:
        raise NiftykitError(f"cannot write to {folder}: {exc.strerror or exc} "
                            "(inference.save_seg_dir)") from None


def infer_ensemble(apps: Sequence[Any], names: Sequence[str], *,
                   models: Optional[Sequence[Any]] = None,
                   weights: Optional[Sequence[float]] = None, fusion: str = "mean",
                   overwrite: bool = False, debug: bool = False,
                   subjects: Optional[Sequence[Subject]] = None) -> List[Path]:
    """Infer with every model and write the fused outputs; returns the files written.

    Args:
        apps: one application per model; the first one's ``[inference]`` says where the
            outputs go (``save_seg_dir``, ``output_postfix``) and its task's
            ``output_prob`` whether probabilities are written.
        names: what identifies each model in messages (the ``--model`` values).
        models: a ready Keras model per application (from an export), or None entries to
            restore each one's checkpoint ``inference.inference_iter``.
        weights: per-model weights (normalised; equal when None).
        fusion: ``mean`` or ``vote`` (module docstring).
        overwrite: replace existing outputs.
        debug: keep TensorFlow's start-up logs.
        subjects: the subjects (e.g. from ``--input``); None takes the first model's
            inference subjects.

    Raises:
        ConfigError: bad weights or fusion, or models that disagree (classes, codes,
            application, image sources).
        NiftykitError: no subjects, no checkpoint, an unwritable output folder, or
            outputs that exist without ``overwrite``.
    """
    lead = apps[0]
    Fusion(fusion)  # the name checked before any work
    _check_kind(apps, names)
    weight_values = normalise_weights(weights, len(apps))
    models = list(models) if models is not None else [None] * len(apps)
    tf = import_tensorflow(lead.config.system.cuda_devices, debug)
    if subjects is None:
        subjects = lead.subjects("inference")
    if not subjects:
        raise DataError("no subject to infer (check --input, inference.dataset_to_infer "
                        "and the split file)")
    for app, model in zip(apps, models):
        if model is None:
            check_checkpoint(app.config.system.model_dir, app.config.inference.inference_iter)
        attach_stages(app, tf)
        app.prepare("inference", subjects)
    _check_agreement(apps, names, fusion)
    out_dir = Path(lead.config.inference.save_seg_dir)
    postfix, output_prob = lead.config.inference.output_postfix, bool(lead.task.output_prob)
    members = [(app, name, Predictor(app, tf, model), float(weight))
               for app, name, model, weight in zip(apps, names, models, weight_values)]
    log.info("ensemble of %d models (%s fusion, weights %s) on %d subjects -> %s", len(apps),
             fusion, ", ".join(f"{w:.3g}" for w in weight_values), len(subjects), out_dir)
    tmp = _make_tmp(out_dir)
    written, saved = [], _redirect(apps, tmp)
    try:
        for number, subject in enumerate(subjects, 1):
            path = _output_path(out_dir, subject, postfix, SUFFIXES[lead.section])
            if path.exists() and not overwrite:
                raise DataError(f"{path} exists; pass --overwrite to replace it")
            label, tic = f"[{number}/{len(subjects)}] {subject.id}", time.perf_counter()
            result = _infer_subject(members, Fusion(fusion), subject, label)
            written.append((subject.id, os.fspath(
                _write(lead, result, path, subject, output_prob, overwrite))))
            log.info("%s -> %s (%d models, %.1fs)", label, written[-1][1], len(members),
                     time.perf_counter() - tic)
    finally:
        _restore(apps, saved)
        shutil.rmtree(tmp, ignore_errors=True)
    index = out_dir / INFERRED_CSV
    write_csv(index, written, overwrite=True)
    log.info("outputs listed in %s", index)
    return [Path(p) for _, p in written]


def _infer_subject(members: Sequence[Tuple[Any, str, Any, float]], fused: Fusion,
                   subject: Subject, label: str) -> Tuple[Fusion, Any]:
    """Every model ``(application, name, predict, weight)`` on one subject, added to
    ``fused``; returns it and the first model's output image (its grid), or None."""
    grid = None
    for number, (app, name, predict, weight) in enumerate(members, 1):
        bar = ProgressBar(f"{label} model {number}/{len(members)}")
        single = Path(app.infer_subject(subject, predict, overwrite=True, progress=bar))
        probabilities, image = _probabilities(app, single, subject)
        single.unlink()
        if grid is None:
            grid = image
        elif image is not None and image.array.shape != grid.array.shape:
            raise DataError(f"--model {name}: output {image.array.shape} for subject "
                            f"'{subject.id}' differs from {grid.array.shape}")
        fused.add(probabilities, weight)
    return fused, grid
