"""Coarse-to-fine cascade segmentation: find the region at low resolution, segment it at full.

Stage 1 is an ordinary segmentation of the same labels on volumes resampled to
``cascade.stage1_pixdim`` (mm), with its own window (``stage1_window_size``), network
(``stage1_network``, ``stage1_params``) and iterations (``stage1_max_iter``); unset keys
take stage 2's value. Its foreground probability (1 − P(background)) is brought back to
the input file's grid and then onto stage 2's grid (the inputs' ``pixdim``). Stage 2
works inside the box where that probability is at least ``stage1_threshold`` (its largest
connected part, with ``stage1_largest_component``), grown by ``region_margin_mm`` on every
side and at least to the window: its volumes are cropped to the box, and the probability is

* ``cascade_mode: input`` - an extra input channel (Havaei et al.'s InputCascadeCNN,
  MedIA 35, 2017; Roth et al.'s two-stage 3-D U-Net, Comput Med Imaging Graph 66, 2018,
  fed its candidate region to stage 2; Valverde et al., NeuroImage 155, 2017, cascade two
  networks the same way), or
* ``cascade_mode: local`` - joined to stage 2's last feature maps (``local_features``
  channels) before a 1×1×1 classifier: the network sees the prior where it decides, the
  place of Havaei et al.'s LocalCascadeCNN / MFCascadeCNN concatenation that works with
  any registered backbone, or
* ``cascade_mode: region`` - not at all: stage 2 sees the image in the region only (Roth et
  al.'s cascade cropped stage 2's input to stage 1's candidate region).

Inference pastes the box's labels into an empty volume (background outside, or class
probabilities that say background with ``output_prob``) and undoes the preprocessing, so
the output lies on the input's grid. Where stage 1 finds nothing, stage 2 runs on the
whole volume.

Training: ``niftykit train`` trains stage 1 (``<model_dir>/stage1``; reused when it already
reached its last iteration with the same stage-1 config), then stage 2 (``<model_dir>/models``
as for any application) on the stage-1 predictions of the training images - what stage 2
will see at inference, errors included (Roth et al. trained stage 2 on stage 1's output
too). In training the box also holds the whole reference label, so that a stage-1 miss on a
training image does not hide the target from stage 2. Stage 1 is one of the application's
:meth:`~niftykit.application.base.BaseApplication.stages`: the engine trains it (unless
:meth:`CascadeApplication.stage_trained`; ``--overwrite`` lets it replace stage-1
checkpoints made with another config) and attaches its predict function before stage 2's
data is prepared, in training and in inference.
``niftykit export`` exports stage 2 only.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
from keras import ops
from scipy import ndimage

from niftykit.application.base import PredictFn
from niftykit.application.segmentation import SegmentationApplication
from niftykit.config.apps import SegmentationConfig
from niftykit.errors import ConfigError, ImageError, NiftykitError
from niftykit.io import Image, Subject, write_image
from niftykit.io.geometry import Geometry, apply_geometry
from niftykit.sampler import flip_tta, label_dtype

__all__ = ["CascadeApplication", "LocalCascadeNet", "region_box", "crop_to_box", "paste_box",
           "margin_voxels", "stage1_config"]

log = logging.getLogger("niftykit")

#: a box on a volume's grid: (start (x, y, z), stop (x, y, z)), stop exclusive
Box = Tuple[Tuple[int, int, int], Tuple[int, int, int]]
_SAMPLINGS = ("uniform", "balanced", "weighted")


# -- the region: pure numpy ---------------------------------------------------------------
def margin_voxels(margin_mm: float, affine: np.ndarray) -> Tuple[int, int, int]:
    """``margin_mm`` in voxels along each axis of a grid with voxel-to-mm ``affine``
    (rounded up)."""
    spacing = np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
    return tuple(math.ceil(margin_mm / s - 1e-9) for s in spacing)  # type: ignore[return-value]


def _grow(start: int, stop: int, size: int, extent: int) -> Tuple[int, int]:
    """``[start, stop)`` grown about its centre to at least ``size`` and kept in ``[0, extent)``."""
    if stop - start >= size:
        return start, stop
    if size >= extent:
        return 0, extent
    start = max(0, min((start + stop - size) // 2, extent - size))
    return start, start + size


def region_box(probability: np.ndarray, threshold: float, margin: Sequence[int],
               minimum: Sequence[int], also: Optional[np.ndarray] = None,
               largest: bool = False) -> Box:
    """The box of the voxels where ``probability >= threshold`` (or ``also`` is set),
    grown by ``margin`` voxels on each side and at least to ``minimum`` (a window),
    clipped to the volume; the whole volume when no voxel qualifies.

    Args:
        probability: ``(x, y, z)`` or ``(x, y, z, 1)`` stage-1 foreground probability.
        threshold: the probability that counts as found.
        margin: voxels added before and after along each axis.
        minimum: the smallest box size along each axis (sizes <= 0: no minimum).
        also: ``(x, y, z[, 1])`` voxels that must lie in the box too (a reference label).
        largest: keep only the connected component (26-neighbourhood) of the found voxels
            with the largest summed probability, so that a stray false positive far away
            does not stretch the box.
    """
    shape = probability.shape[:3]
    probability = probability.reshape(shape)
    found = probability >= threshold
    if largest and found.any():
        components, count = ndimage.label(found, structure=np.ones((3, 3, 3)))
        if count > 1:
            mass = ndimage.sum_labels(probability, components, index=np.arange(1, count + 1))
            found = components == int(np.argmax(mass)) + 1
    if also is not None:
        found = found | (also.reshape(shape) > 0)
    if not found.any():
        return (0, 0, 0), tuple(int(s) for s in shape)  # type: ignore[return-value]
    start, stop = [], []
    for axis in range(3):
        hits = np.flatnonzero(found.any(axis=tuple(a for a in range(3) if a != axis)))
        low = max(0, int(hits[0]) - int(margin[axis]))
        high = min(shape[axis], int(hits[-1]) + 1 + int(margin[axis]))
        low, high = _grow(low, high, int(minimum[axis]), shape[axis])
        start.append(low)
        stop.append(high)
    return tuple(start), tuple(stop)  # type: ignore[return-value]


def crop_to_box(volume: np.ndarray, box: Box) -> np.ndarray:
    """The C-contiguous part of ``volume`` ``(x, y, z, ...)`` inside ``box``."""
    return np.ascontiguousarray(volume[tuple(slice(a, b) for a, b in zip(*box))])


def paste_box(part: np.ndarray, box: Box, shape: Sequence[int],
              fill: Any = 0) -> np.ndarray:
    """``part`` (the result on ``box``) placed in a new ``shape`` volume holding ``fill``
    elsewhere (a value, or one per channel); the inverse of :func:`crop_to_box`."""
    full = np.empty(tuple(shape[:3]) + part.shape[3:], dtype=part.dtype)
    full[...] = fill
    full[tuple(slice(a, b) for a, b in zip(*box))] = part
    return full


# -- the stage-1 run --------------------------------------------------------------------
def stage1_config(config: Any) -> Any:
    """The config of stage 1: a ``segmentation`` of the same labels on volumes resampled to
    ``stage1_pixdim``, with stage 1's window, network and iterations, in ``<model_dir>/stage1``
    (same split file, same histogram and label-mapping file)."""
    task = config.cascade
    stage = copy.deepcopy(config)
    fields = [f.name for f in dataclasses.fields(SegmentationConfig)]
    stage.application, stage.cascade = "segmentation", None
    stage.segmentation = SegmentationConfig(**{name: copy.deepcopy(getattr(task, name))
                                               for name in fields})
    stage.segmentation.output_prob = True  # its probabilities feed stage 2
    for section in stage.inputs.values():
        section.pixdim = tuple(task.stage1_pixdim)
        if task.stage1_window_size and section.spatial_window_size:
            section.spatial_window_size = tuple(task.stage1_window_size)
    if task.stage1_network:
        stage.network.name, stage.network.params = task.stage1_network, dict(task.stage1_params)
    elif task.stage1_params:
        stage.network.params = dict(task.stage1_params)
    if task.stage1_max_iter > 0:
        stage.training.max_iter = task.stage1_max_iter
    stage.training.starting_iter = 0  # stage 1 is reused or trained afresh, never resumed
    stage.training.restore_from, stage.training.vars_to_freeze = None, ""  # stage 2's transfer
    stage.system.model_dir = Path(config.system.model_dir) / "stage1"
    stage.inference.inference_iter = -1
    stage.inference.spatial_window_size = None
    stage.inference.border = (0, 0, 0)
    stage.inference.crf = "none"
    stage.inference.save_seg_dir = stage.system.model_dir / "output"
    return stage


@dataclass
class CascadePrepared:
    """A subject on stage 2's grid, cropped to its region.

    Attributes:
        volumes: ``"image"`` ``(x, y, z, c + 1)`` (the image channels, then stage 1's
            foreground probability; ``c`` with ``cascade_mode: region``), ``"label"`` and
            ``"sampler"`` as in segmentation, all cut to ``box``.
        geometry, source: as :class:`~niftykit.io.preprocess.Prepared` (the whole grid).
        box: the region on stage 2's grid.
        shape: stage 2's whole grid ``(x, y, z)``.
    """

    volumes: Dict[str, np.ndarray]
    geometry: Geometry
    source: Image
    box: Box
    shape: Tuple[int, int, int]


class CascadeApplication(SegmentationApplication):
    """Two-stage coarse-to-fine segmentation (config section ``cascade``); see the module
    docstring for the stages, the region and the two ways stage 1's output reaches stage 2.

    Raises:
        ConfigError: a setting the cascade cannot run (naming the key).
    """

    section = "cascade"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        where, net = config.source, config.network
        if net.window_sampling not in _SAMPLINGS:
            raise ConfigError(f"{where}: [network] window_sampling: the cascade's stage 2 cuts "
                              f"windows from its region; use {', '.join(_SAMPLINGS)}, got "
                              f"{net.window_sampling}")
        if config.system.strategy != "default":
            raise ConfigError(f"{where}: [system] strategy: the cascade trains its two stages "
                              f"one after the other with the default strategy, got "
                              f"{config.system.strategy}")
        if config.inference.crf != "none":
            raise ConfigError(f"{where}: [inference] crf: not available with the cascade; "
                              "use crf: none")
        if not self.task.softmax:
            raise ConfigError(f"{where}: [cascade] softmax: stage 1 hands on a probability; "
                              "set softmax: true")
        if any(size == 1 for size in self.training_window()):
            raise ConfigError(f"{where}: [inputs.{self.task.image[0]}] spatial_window_size: "
                              "the cascade segments 3-D windows")
        self.stage1 = SegmentationApplication(stage1_config(config))
        self._stage1_predict: Optional[PredictFn] = None
        self._lock = threading.Lock()

    # -- stage 1: trained and run by the engine (BaseApplication.stages) ----------------
    def stages(self) -> Sequence[Any]:
        """Stage 1, which the engine trains before stage 2 and attaches for both phases."""
        return (self.stage1,)

    def stage_trained(self, stage: Any) -> bool:
        """Stage 1 is current when it reached its last iteration with the same stage-1 config
        (delete ``<model_dir>/stage1`` to retrain it)."""
        cfg = stage.config
        folder = Path(cfg.system.model_dir)
        last = folder / "models" / f"model.ckpt-{cfg.training.max_iter}.index"
        saved = folder / "config.yaml"
        return last.exists() and saved.exists() and saved.read_text("utf-8") == cfg.to_yaml()

    def attach_stages(self, predictors: Sequence[PredictFn]) -> None:
        self._stage1_predict = predictors[0]

    def prepare(self, phase: str, subjects: Sequence[Subject]) -> None:
        """Stage 2's preprocessing, and stage 1's (trained by then) for its predictions."""
        super().prepare(phase, subjects)
        if phase != "evaluation":
            self.stage1.prepare("inference", subjects)

    def stage1_probability(self, subject: Subject, geometry: Geometry) -> np.ndarray:
        """Stage 1's foreground probability ``(x, y, z, 1)`` float32 on the grid of ``geometry``
        (stage 2's): predicted at ``stage1_pixdim``, back on the file's grid, then resampled."""
        if self._stage1_predict is None:
            raise NiftykitError("cascade: stage 1's network is not attached; train and infer "
                                "through niftykit.engine (or niftykit.api), which attach it")
        with self._lock:  # one stage-1 network, shared by the loading threads
            prepared = self.stage1.preprocess(subject, with_label=False)
            probabilities = self.stage1._infer_grid(prepared.volumes["image"],
                                                    self._stage1_predict, None)
        foreground = np.clip(1.0 - probabilities[..., :1], 0.0, 1.0).astype(np.float32)
        on_file = self.stage1.preprocessor.restore(foreground, prepared.geometry, labels=False,
                                                   fill=[0.0])
        return apply_geometry(np.ascontiguousarray(on_file, dtype=np.float32), geometry, 1,
                              "constant")

    def cache_key(self, subject: Subject, with_label: bool) -> str:
        """Stage 2's key, changed whenever stage 1's checkpoints do."""
        state = Path(self.stage1.config.system.model_dir) / "models" / "checkpoint"
        stamp = state.stat().st_mtime_ns if state.exists() else 0
        digest = hashlib.sha1(f"{stamp}".encode()).hexdigest()[:8]
        return f"{super().cache_key(subject, with_label)}-{digest}"

    # -- stage 2 ----------------------------------------------------------------------
    def preprocess(self, subject: Subject, with_label: bool) -> CascadePrepared:
        prepared = super().preprocess(subject, with_label)
        probability = self.stage1_probability(subject, prepared.geometry)
        shape = prepared.volumes["image"].shape[:3]
        window = self.training_window()
        inference = self.config.inference.spatial_window_size or window
        minimum = [max(a, b) for a, b in zip(window, inference)]
        box = region_box(probability, self.task.stage1_threshold,
                         margin_voxels(self.task.region_margin_mm, prepared.geometry.affine),
                         minimum, prepared.volumes.get("label") if with_label else None,
                         largest=self.task.stage1_largest_component)
        volumes = {name: crop_to_box(volume, box) for name, volume in prepared.volumes.items()}
        if self.task.cascade_mode != "region":
            volumes["image"] = np.concatenate([volumes["image"], crop_to_box(probability, box)],
                                              axis=-1)
        return CascadePrepared(volumes, prepared.geometry, prepared.source, box, shape)

    def build_network(self) -> Any:
        if self.task.cascade_mode != "local":
            return super().build_network()
        if getattr(self.network_class(), "output_kind", "voxels") != "voxels":
            raise ConfigError(f"{self.config.source}: [network] name: cascade_mode: local needs "
                              f"a voxel-wise network, got '{self.config.network.name}'")
        backbone = self.instantiate_network(self.task.local_features, 3)
        return LocalCascadeNet(backbone, self.num_classes, name="cascade")

    def infer_subject(self, subject: Subject, predict: PredictFn, *, overwrite: bool,
                      progress: Optional[Callable[[int, int], None]] = None) -> Path:
        """Both stages on one subject; the label (or probability) map on the input's grid."""
        path = self.output_path(subject)
        if path.exists() and not overwrite:
            raise ImageError(f"{path} exists; pass --overwrite to replace it")
        prepared = self.preprocess(subject, with_label=False)
        if self.config.inference.tta == "flip":
            predict = flip_tta(predict)
        result = self._infer_grid(prepared.volumes["image"], predict, progress)
        log.info("cascade: %s region %s..%s of %s", subject.id, list(prepared.box[0]),
                 list(prepared.box[1]), list(prepared.shape))
        if self.task.output_prob:
            full = paste_box(result, prepared.box, prepared.shape, np.eye(self.num_classes)[0])
            array = self.preprocessor.restore(full, prepared.geometry, labels=False)
        else:
            full = paste_box(result.astype(np.int32, copy=False), prepared.box, prepared.shape)
            array = self.preprocessor.restore(full, prepared.geometry, labels=True)
            if self.preprocessor.label_mapping is None:
                array = array.astype(label_dtype(self.num_classes), copy=False)
        return write_image(array, prepared.source.affine, path, overwrite=overwrite,
                           xform_codes=prepared.source.xform_codes)


class LocalCascadeNet(keras.Model):
    """Stage 2 of ``cascade_mode: local``: a backbone on the image channels, its output
    taken as ``features`` maps, joined to the prior (the last input channel, stage 1's
    probability) and classified by a 1×1×1 convolution.

    Args:
        backbone: a voxel-wise network with ``features`` outputs.
        num_classes: output channels.

    Shapes: ``(batch, x, y, z, c + 1)`` -> ``(batch, x', y', z', num_classes)``, ``x'`` the
    backbone's output size (smaller for valid convolutions; the prior is centre-cropped).
    """

    def __init__(self, backbone: Any, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.head = keras.layers.Conv3D(self.num_classes, 1, name="cascade_head")

    def call(self, inputs: Any, training: Any = None) -> Any:
        features = ops.relu(self.backbone(inputs[..., :-1], training=training))
        prior = inputs[..., -1:]
        have, want = prior.shape[1:4], features.shape[1:4]
        cut = [(int(h) - int(w)) // 2 for h, w in zip(have, want)]
        prior = prior[:, cut[0]:cut[0] + want[0], cut[1]:cut[1] + want[1],
                      cut[2]:cut[2] + want[2]]
        return self.head(ops.concatenate([features, ops.cast(prior, features.dtype)], axis=-1))
