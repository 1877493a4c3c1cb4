"""From files to network-ready volumes and back: the composed, invertible preprocessing.

One :class:`Preprocessor` per run holds the settings (typed values, no
config object) and the data-dependent parts learnt on the training
subjects (Nyúl landmarks, the label mapping). For each subject it

1. reads every source (NaN/Inf replaced only when ``replace_nonfinite`` says so)
   and checks they share one grid (within ``grid_tolerance_mm``);
2. plans the geometry once from the header (reorient to ``axcodes``,
   resample to ``pixdim``, pad) and applies it to each source with its own
   interpolation order (labels: nearest);
3. transforms intensities per channel on the file's grid: CT window,
   percentile clipping, Nyúl standardisation, whitening (optionally inside a
   foreground mask), so statistics never include padding;
4. maps label codes to 0..K−1 (``label_normalisation``) or checks they lie
   in 0..num_classes−1.

Steps 3–4 run before the geometry of step 2 is applied (one resampling and
padding per volume, images with their ``interp_order``, labels nearest).

:meth:`Preprocessor.restore` undoes 4 and 2 for a network output, so what is
written lies on the input file's exact grid, with the input's label codes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from niftykit.errors import DataError
from niftykit.io.discovery import Subject
from niftykit.io.geometry import Geometry, apply_geometry, invert_geometry, plan_geometry
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.image import Image, check_same_grid, read_image
from niftykit.io.intensity import ct_window, foreground_mask, percentile_clip, whiten
from niftykit.io.labels import LabelMapping

__all__ = ["SourceSettings", "Preprocessor", "Prepared", "modality_names"]

log = logging.getLogger("niftykit")


@dataclass(frozen=True)
class SourceSettings:
    """How one input source is read and its intensities handled.

    Attributes:
        name: the input section name (e.g. ``"CT"``).
        interp_order: spline order for resampling (images 0–3; labels use 0).
        ct_window: clip to ``(low, high)`` (e.g. HU) and rescale to [0, 1].
        percentile_clip: clip each channel to these percentiles (0–100).
        replace_nonfinite: value replacing NaN/Inf voxels; None makes them an error.
    """

    name: str
    interp_order: int = 1
    ct_window: Optional[Tuple[float, float]] = None
    percentile_clip: Optional[Tuple[float, float]] = None
    replace_nonfinite: Optional[float] = None


@dataclass
class Prepared:
    """A subject's volumes on the network's grid, and how to go back.

    Attributes:
        volumes: ``"image"`` → ``(x, y, z, c)`` float32; ``"label"`` → ``(x, y, z, 1)`` int32.
        geometry: the plan from the file's grid to the volumes' grid.
        source: the first image source as read (its path and affine name the output's grid).
    """

    volumes: Dict[str, np.ndarray]
    geometry: Geometry
    source: Image


@dataclass
class Preprocessor:
    """The preprocessing of one application run.

    Args:
        images: image sources, stacked as channels in this order.
        label: the label source, or None.
        num_classes: labels (including background) the network predicts.
        axcodes, pixdim: target orientation and spacing (mm), or None to keep.
        padding, pad_to, pad_mode: NiftyNet's ``volume_padding_*``.
        whitening, foreground_only, foreground_type, multimod_foreground_type: mean/variance
            normalisation, optionally over a foreground mask.
        histogram: fitted Nyúl standardiser (``normalisation``), or None.
        label_mapping: learnt code mapping (``label_normalisation``), or None.
        grid_tolerance_mm: how far the affines of one subject's sources may differ.
    """

    images: Sequence[SourceSettings]
    label: Optional[SourceSettings] = None
    num_classes: int = 2
    axcodes: Optional[Sequence[str]] = None
    pixdim: Optional[Sequence[float]] = None
    padding: Sequence[int] = (0, 0, 0)
    pad_to: Sequence[int] = (0, 0, 0)
    pad_mode: str = "minimum"
    whitening: bool = False
    foreground_only: bool = False
    foreground_type: str = "otsu_plus"
    multimod_foreground_type: str = "and"
    histogram: Optional[HistogramStandardiser] = None
    label_mapping: Optional[LabelMapping] = None
    grid_tolerance_mm: float = 1e-3

    # -- reading ----------------------------------------------------------------
    def read_source(self, path: Path, settings: SourceSettings, kind: str = "image") -> Image:
        """One file, with NaN/Inf handled as the source's settings say."""
        return read_image(path, kind, nonfinite=settings.replace_nonfinite)

    def read_images(self, subject: Subject) -> List[Image]:
        """The subject's image sources as read, checked to share one grid."""
        images = [self.read_source(subject.paths[s.name], s) for s in self.images]
        for other in images[1:]:
            check_same_grid(images[0], other, atol=self.grid_tolerance_mm)
        return images

    def plan(self, image: Image) -> Geometry:
        """The geometry plan of a subject, from its first image's header."""
        return plan_geometry(image.spatial_shape, image.affine, axcodes=self.axcodes,
                             pixdim=self.pixdim, padding=self.padding, pad_to=self.pad_to)

    # -- intensities ----------------------------------------------------------------
    def _intensities(self, arrays: List[np.ndarray]) -> np.ndarray:
        channels = []
        for settings, array in zip(self.images, arrays):
            if settings.ct_window is not None:
                array = ct_window(array, *settings.ct_window)
            if settings.percentile_clip is not None:
                array = percentile_clip(array, *settings.percentile_clip)
            if self.histogram is not None:
                array = np.concatenate([self.histogram.transform(array[..., c], _modality(settings, c, array))
                                        [..., None] for c in range(array.shape[-1])], axis=-1)
            channels.append(array)
        if not channels:
            raise DataError("no image source to preprocess")
        stacked = np.concatenate(channels, axis=-1) if len(channels) > 1 else channels[0]
        if self.whitening:
            mask = (foreground_mask(stacked, self.foreground_type, self.multimod_foreground_type)
                    if self.foreground_only else None)
            stacked = whiten(stacked, mask)
        return np.ascontiguousarray(stacked, dtype=np.float32)

    # -- labels ------------------------------------------------------------------
    def _labels(self, label: Image) -> np.ndarray:
        array = label.array
        if self.label_mapping is not None:
            return self.label_mapping.apply(array, where=str(label.path))
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= self.num_classes:
            bad = low if low < 0 else high
            raise DataError(
                f"label value {bad} in {label.path} is outside 0..{self.num_classes - 1} "
                f"(segmentation.num_classes={self.num_classes}; set "
                "segmentation.label_normalisation: true to map arbitrary codes)")
        return array

    # -- the whole thing -------------------------------------------------------------
    def __call__(self, subject: Subject, with_label: bool = True) -> Prepared:
        """Read and preprocess one subject.

        Intensities are transformed on the file's grid (statistics over the
        real voxels, not over padding), then the geometry plan moves every
        volume to the network's grid in one resampling.
        """
        images = self.read_images(subject)
        geometry = self.plan(images[0])
        volume = self._intensities([image.array for image in images])
        order = self.images[0].interp_order
        volumes = {"image": apply_geometry(volume, geometry, max(order, 0), self.pad_mode)}
        if with_label and self.label is not None:
            label = self.read_source(subject.paths[self.label.name], self.label, "label")
            check_same_grid(images[0], label, atol=self.grid_tolerance_mm)
            if label.num_channels != 1:
                raise DataError(f"{label.path}: a label map has one channel, got {label.num_channels}")
            volumes["label"] = apply_geometry(self._labels(label), geometry, 0, "constant")
        return Prepared(volumes=volumes, geometry=geometry, source=images[0])

    def restore(self, output: np.ndarray, geometry: Geometry, *, labels: bool) -> np.ndarray:
        """A network output on the volumes' grid → the input file's grid.

        Args:
            output: ``(x, y, z)`` class indices (``labels``) or ``(x, y, z, c)`` values.
            geometry: the subject's plan.
            labels: indices (nearest, then mapped back to the input's codes) or
                continuous values such as probabilities (linear).
        """
        array = output[..., None] if output.ndim == 3 else output
        restored = invert_geometry(array, geometry, 0 if labels else 1)
        if labels:
            restored = restored[..., 0]
            if self.label_mapping is not None:
                return self.label_mapping.invert(restored)
        return restored


def _modality(settings: SourceSettings, channel: int, array: np.ndarray) -> str:
    return settings.name if array.shape[-1] == 1 else f"{settings.name}_{channel}"


def modality_names(sources: Sequence[SourceSettings], images: Sequence[Image]) -> List[str]:
    """Histogram modality names, one per channel: the source name, or ``<name>_<c>``
    for the channels of a multi-channel source."""
    return [_modality(s, c, image.array) for s, image in zip(sources, images)
            for c in range(image.num_channels)]

