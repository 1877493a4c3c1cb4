"""Weakly supervised localisation: a classifier trained on image-level labels, and its
class activation maps (CAM) as the lesion's localisation.

A worked example of subclassing
:class:`~niftykit.application.classification.ClassificationApplication`
(``configs/method_weak_cam.yaml``). Training is the parent's, untouched: each image
carries one class ("holds a lesion" or not) and nothing else. At inference the class
CSV is written as before, and beside it

* ``<save_seg_dir>/<id><output_postfix>_cam.nii.gz``: float32 in [0, 1], the class
  activation map of the class ``cam_class`` (Zhou et al., "Learning Deep Features for
  Discriminative Localization", CVPR 2016, arXiv:1512.04150);
* ``<id><output_postfix>_cam_mask.nii.gz`` (uint8): that map at ``cam_threshold``,

both on the input file's grid (same shape and affine: every resampling, reorientation,
crop and pad of the preprocessing undone by ``Preprocessor.restore``, as segmentation
does). Hwang & Kim (self-transfer learning, arXiv:1602.01625, 2016) and Feng et al.
(weakly supervised nodule segmentation, MICCAI 2017) localise lesions in this way.

**The maps.** A network that ends in global average pooling (``pool``) and a Dense
``classifier`` (``resnet``, ``se_resnet``) gives logits ``y_c = b_c + Σ_k w_kc ·
mean_v f_k(v)``; both steps are linear, so ``y_c = mean_v M_c(v)`` with
``M_c(v) = b_c + Σ_k w_kc f_k(v)``, the CAM. At inference the network is built with its
pooling replaced by the identity: the classifier then runs at every voxel of the last
feature maps and outputs ``M`` ``(batch, x', y', z', classes)`` (``x' = x / 2`` per
strided stage), with the same weights, restored from the same checkpoint. The map of
``cam_class`` is zoomed (linear) to the window, then to the preprocessed volume (or
blended over the inference grid with ``window_sampling: uniform``), rescaled to [0, 1]
(min-max over the volume, as Zhou et al.) and restored to the input's grid. A network
without that head (e.g. ``regression_head`` with hidden layers) is refused: Grad-CAM is
not implemented.

**Evaluation** is the parent's (accuracy, ROC AUC, confusion matrix) and, with
``cam_reference`` naming an input section of lesion masks that training never reads,
per subject with a lesion: the Dice of the thresholded map against the mask and the
pointing game (is the map's maximum inside the lesion; Zhang et al., "Top-down neural
attention by excitation backprop", ECCV 2016), with two uninformed baselines: a blob
centred in the field of view (:func:`centred_blob`) and a uniformly random point
(its expected hit rate, the lesion's share of the volume). Written to
``<save_csv_dir>/localisation.csv``; the means join the summary.

Settings, in ``network.params`` and taken out before the network is built:
``cam_threshold`` (0.2 of the map's range, Zhou et al.'s choice; in (0, 1)),
``cam_mask`` (true: write the thresholded map),
``cam_class`` (the label code whose map is written; default the highest class) and
``cam_reference`` (an input section name, or none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np

from niftykit.application.base import PredictFn
from niftykit.application.classification import ClassificationApplication
from niftykit.application.dataset import discover_subjects
from niftykit.application.per_image import output_file
from niftykit.errors import ConfigError, DataError
from niftykit.evaluation import dice
from niftykit.io import Subject, read_image, write_csv, write_image
from niftykit.sampler import GridAggregator, flip_tta, resize_to

__all__ = ["WeakLocalisationApplication", "class_activation_maps", "normalise_map",
           "localisation_scores", "centred_blob"]

#: ``network.params`` keys read by this application (and not passed to the network)
APP_PARAMS = ("cam_threshold", "cam_mask", "cam_class", "cam_reference")
LOCALISATION_CSV = "localisation.csv"
#: localisation.csv column -> the name of its mean in the evaluation summary
SUMMARY = {"dice": "cam_dice", "pointing_hit": "pointing_game", "centre_dice": "centre_dice",
           "centre_hit": "centre_pointing", "random_hit": "random_pointing"}


def class_activation_maps(network: Any) -> Any:
    """``network`` (unbuilt) changed to output its class activation maps.

    Args:
        network: a Keras model whose ``call`` ends ``classifier(pool(features))``, with
            ``pool`` a global average pooling and ``classifier`` a Dense layer (niftykit's
            ``ResNet``, ``SEResNet``).

    Returns:
        The same model, ``pool`` replaced by the identity: it outputs ``(batch, x', y', z',
        classes)`` maps whose spatial mean equals the original logits. Weight names are
        unchanged, so a checkpoint of the original restores into it.

    Raises:
        ValueError: the network has no such head, or is already built.
    """
    pool, classifier = getattr(network, "pool", None), getattr(network, "classifier", None)
    if not (isinstance(pool, (keras.layers.GlobalAveragePooling3D,
                              keras.layers.GlobalAveragePooling2D))
            and isinstance(classifier, keras.layers.Dense)):
        raise ValueError(f"{type(network).__name__} does not end in global average pooling "
                         "('pool') and a Dense 'classifier' (as resnet, se_resnet do); class "
                         "activation maps need that head (Grad-CAM is not implemented)")
    if network.built:
        raise ValueError("class_activation_maps changes a network before it is built")
    network.pool = keras.layers.Identity(name="pool")
    return network


def normalise_map(values: np.ndarray) -> np.ndarray:
    """``values`` rescaled to [0, 1] (min-max, float32); all 0 for a constant map."""
    low, high = float(np.min(values)), float(np.max(values))
    if not high > low:
        return np.zeros(values.shape, np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def centred_blob(shape: Sequence[int], affine: np.ndarray,
                 sigma_fraction: float = 0.15) -> np.ndarray:
    """An uninformed map: a Gaussian (isotropic in mm) at the centre of the field of view.

    Args:
        shape: ``(x, y, z)`` voxels.
        affine: ``(4, 4)`` voxel-to-mm matrix (its spacing makes the blob round in mm).
        sigma_fraction: the Gaussian's sigma over the field of view's smallest extent.

    Returns:
        ``shape`` float32 in (0, 1], 1 at the centre.
    """
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape],
                                indexing="ij"), -1)
    offset_mm = (grid - (np.asarray(shape) - 1) / 2.0) * spacing
    sigma = sigma_fraction * float(np.min(np.asarray(shape) * spacing))
    return np.exp(-np.sum(offset_mm ** 2, -1) / (2 * sigma ** 2)).astype(np.float32)


def localisation_scores(cam: np.ndarray, mask: np.ndarray, threshold: float) -> Dict[str, float]:
    """How well a map ``(x, y, z)`` in [0, 1] localises a lesion mask of the same shape.

    Returns:
        ``dice`` of ``cam >= threshold`` against ``mask > 0``; ``pointing_hit`` 1.0 when the
        map's maximum (the first, if tied) lies in the lesion, else 0.0; ``random_hit`` the
        hit rate of a uniformly random point (the lesion's share of the voxels).
    """
    lesion = np.asarray(mask) > 0
    peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return {"dice": float(dice(np.asarray(cam) >= threshold, lesion)),
            "pointing_hit": float(lesion[peak]), "random_hit": float(lesion.mean())}


class WeakLocalisationApplication(ClassificationApplication):
    """Classification from image-level labels, plus class activation maps as NIfTI
    (config section ``classification``).

    Args:
        config: the loaded config; ``network.params`` may hold ``cam_threshold``,
            ``cam_mask``, ``cam_class`` and ``cam_reference`` (module docstring).

    Raises:
        ConfigError: a bad setting (naming ``[network] params: <key>``), or a
            ``window_sampling`` other than ``resize`` or ``uniform``.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        params, where = dict(config.network.params or {}), f"{config.source}: [network] params"
        threshold = params.pop("cam_threshold", 0.2)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0 < threshold < 1:
            raise ConfigError(f"{where}: cam_threshold: expected a number in (0, 1), "
                              f"got {threshold!r}")
        self.cam_threshold = float(threshold)
        self.cam_mask = params.pop("cam_mask", True)
        if not isinstance(self.cam_mask, bool):
            raise ConfigError(f"{where}: cam_mask: expected true or false, got {self.cam_mask!r}")
        self.cam_class = params.pop("cam_class", None)
        if self.cam_class is not None and (isinstance(self.cam_class, bool)
                                           or not isinstance(self.cam_class, int)):
            raise ConfigError(f"{where}: cam_class: expected a label code (a whole number), "
                              f"got {self.cam_class!r}")
        self.cam_reference = params.pop("cam_reference", None)
        if self.cam_reference is not None and self.cam_reference not in config.inputs:
            raise ConfigError(f"{where}: cam_reference: '{self.cam_reference}' is not an input "
                              f"section (have {', '.join(config.inputs)})")
        if config.network.window_sampling not in ("resize", "uniform"):
            raise ConfigError(f"{config.source}: [network] window_sampling: class activation "
                              "maps take resize or uniform (3-D windows), got "
                              f"{config.network.window_sampling}")
        #: ``network.params`` without this application's keys: the network's arguments
        self.network_params = params
        self.phase = "training"

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """The parent's preparation; notes the phase (inference builds the map network)."""
        self.phase = phase
        super().prepare(phase, subjects)

    # -- model --------------------------------------------------------------------
    def build_network(self) -> Any:
        """``network.name`` without this application's keys; at inference its class
        activation maps (:func:`class_activation_maps`) instead of its logits."""
        window = self.training_window()
        network = self.instantiate_network(self.num_classes, 2 if window[2] == 1 else 3,
                                           params=self.network_params)
        if self.phase != "inference":
            return network
        try:
            return class_activation_maps(network)
        except ValueError as exc:
            raise ConfigError(f"{self.config.source}: [network] name: "
                              f"'{self.config.network.name}': {exc}") from exc

    # -- inference ----------------------------------------------------------------
    def cam_index(self) -> int:
        """The class index whose map is written (``cam_class``, default the last)."""
        if self.cam_class is None:
            return self.num_classes - 1
        return self.code_index(int(self.cam_class), "[network] params: cam_class")

    def cam_path(self, subject_id: str, mask: bool = False) -> Path:
        """``<save_seg_dir>/<id><output_postfix>_cam[_mask].nii.gz``."""
        suffix = "_cam_mask.nii.gz" if mask else "_cam.nii.gz"
        return output_file(self, Subject(subject_id, {}), suffix)

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        """The class CSV (the parent's, from the maps' spatial means: the logits), then the
        map and, with ``cam_mask``, its threshold on the input's grid; returns the CSV."""
        maps = [self.cam_path(subject.id)] + ([self.cam_path(subject.id, True)]
                                              if self.cam_mask else [])
        for path in maps:
            if path.exists() and not overwrite:
                raise DataError(f"{path} exists; pass --overwrite to replace it")
        table = super().infer_subject(subject, lambda w: _checked(predict(w)).mean(axis=(1, 2, 3)),
                                      overwrite=overwrite, progress=progress)
        prepared = self.preprocess(subject, with_label=False)
        cam = self.activation_map(prepared.volumes["image"], predict)
        array = self.preprocessor.restore(cam[..., None], prepared.geometry, labels=False,
                                          fill=[0.0])
        array = np.clip(array, 0.0, 1.0).astype(np.float32)
        source = prepared.source
        write_image(array, source.affine, maps[0], overwrite=overwrite,
                    xform_codes=source.xform_codes)
        if self.cam_mask:
            write_image((array >= self.cam_threshold).astype(np.uint8), source.affine, maps[1],
                        overwrite=overwrite, xform_codes=source.xform_codes)
        return table

    def activation_map(self, volume: np.ndarray, predict: PredictFn) -> np.ndarray:
        """The class activation map ``(x, y, z)`` in [0, 1] over a preprocessed volume
        ``(x, y, z, c)``: the whole volume zoomed to the window (``resize``) or blended over
        the inference grid (``uniform``), with ``inference.tta: flip``'s flips."""
        inference, index = self.config.inference, self.cam_index()

        def run(windows: np.ndarray) -> np.ndarray:  # maps zoomed to the windows
            maps = _checked(predict(windows))[..., index:index + 1]
            return np.stack([resize_to(m, windows.shape[1:4], 1) for m in maps])
        if inference.tta == "flip":
            run = flip_tta(run)
        if self.config.network.window_sampling == "resize":
            order = max(self.config.inputs[self.task.image[0]].interp_order, 0)
            zoomed = resize_to(volume, self.training_window(), order)
            return normalise_map(resize_to(run(zoomed[None])[0], volume.shape[:3], 1)[..., 0])
        sampler = self.grid_sampler(volume, self.inference_window(volume.shape[:3]), (0, 0, 0))
        aggregator = GridAggregator(sampler, 1, mode=inference.aggregation,
                                    output="probabilities", fill_constant=0.0)
        for windows, locations in sampler.batches(self.config.network.batch_size):
            aggregator.add(run(windows), locations)
        return normalise_map(aggregator.result()[..., 0])

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, inferred: Mapping[str, Path], *, overwrite: bool) -> Tuple[Path, dict]:
        """The parent's classification scores; with ``cam_reference`` also the maps' Dice
        and pointing game against the lesion masks, per subject with a lesion, in
        ``<save_csv_dir>/localisation.csv`` (returned), means in the summary."""
        out, summary = super().evaluate(inferred, overwrite=overwrite)
        if self.cam_reference is None:
            return out, summary
        path = Path(self.config.evaluation.save_csv_dir) / LOCALISATION_CSV
        if path.exists() and not overwrite:
            raise DataError(f"{path} exists; pass --overwrite to replace it")
        rows = self.localisation_rows(sorted(inferred))
        if not rows:
            raise DataError(f"no lesion in the '{self.cam_reference}' masks of the "
                            f"{len(inferred)} inferred subjects (network.params.cam_reference)")
        header = list(rows[0])
        write_csv(path, [[r[k] if isinstance(r[k], str) else f"{r[k]:.6g}" for k in header]
                         for r in rows], header=header, overwrite=True)
        means = {name: float(np.mean([r[key] for r in rows])) for key, name in SUMMARY.items()}
        return path, {"all": {**summary["all"], **means}}

    def localisation_rows(self, subject_ids: Sequence[str]) -> List[Dict[str, Any]]:
        """One row per inferred subject whose mask holds a lesion: sizes, the map's scores
        and the baselines' (:func:`localisation_scores`, :func:`centred_blob`)."""
        masks = {s.id: s.paths[self.cam_reference] for s in discover_subjects(
            self.config.inputs, [self.cam_reference], strict=False)}
        rows = []
        for sid in subject_ids:
            if sid not in masks:
                continue
            mask = read_image(masks[sid], kind="label")
            if not np.any(mask.array > 0):
                continue
            cam_file = self.cam_path(sid)
            if not cam_file.exists():
                raise DataError(f"{cam_file} not found; run `niftykit infer` with this config")
            cam = read_image(cam_file)
            if cam.array.shape != mask.array.shape or not np.allclose(cam.affine, mask.affine,
                                                                      atol=1e-3):
                raise DataError(f"{cam_file} ({cam.array.shape}) is not on the grid of its mask "
                                f"{masks[sid]} ({mask.array.shape}); same shape and affine needed")
            scores = localisation_scores(cam.array[..., 0], mask.array[..., 0], self.cam_threshold)
            centre = localisation_scores(centred_blob(mask.array.shape[:3], mask.affine),
                                         mask.array[..., 0], self.cam_threshold)
            rows.append({"subject_id": sid, "lesion_voxels": int(np.sum(mask.array > 0)),
                         "cam_voxels": int(np.sum(cam.array >= self.cam_threshold)),
                         "dice": scores["dice"], "pointing_hit": scores["pointing_hit"],
                         "centre_dice": centre["dice"], "centre_hit": centre["pointing_hit"],
                         "random_hit": scores["random_hit"]})
        return rows


def _checked(maps: np.ndarray) -> np.ndarray:
    """The network's output, which must be maps ``(B, x', y', z', classes)``."""
    maps = np.asarray(maps)
    if maps.ndim != 5:
        raise DataError(f"the network gave outputs of shape {maps.shape}, not class activation "
                        "maps (batch, x, y, z, classes): infer from the training checkpoints "
                        "with this application (an exported model holds the pooled head)")
    return maps
