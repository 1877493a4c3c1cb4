"""From files to network-ready volumes and back: the composed, invertible preprocessing.

One :class:`Preprocessor` per run holds the settings (typed values, no
config object) and the data-dependent parts learnt on the training
subjects (Nyúl landmarks, the label mapping). For each subject it

1. reads every source (NaN/Inf replaced only when ``replace_nonfinite`` says so)
   and checks they share one grid (within ``grid_tolerance_mm``);
2. plans the geometry once from the header (crop to the subject's box from
   ``crop_box_file``, reorient to ``axcodes``, resample to ``pixdim``, pad) and
   applies it to each source with its own interpolation order (labels: nearest);
   the crop comes first, so everything below sees the box only;
3. transforms intensities per channel on the file's grid (the box): CT window,
   percentile clipping, Nyúl standardisation, whitening (optionally inside a
   foreground mask), so statistics never include padding;
4. maps label codes to 0..K−1 (``label_normalisation``) or checks they lie
   in 0..num_classes−1.

Steps 3–4 run before the geometry of step 2 is applied (one resampling and
padding per volume, images with their ``interp_order``, labels nearest).

:meth:`Preprocessor.restore` undoes 4 and 2 for a network output, so what is
written lies on the input file's exact grid, with the input's label codes (outside a
crop box: label 0, or class probabilities that say background).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from nibabel import orientations as ornts

from niftykit.errors import DataError
from niftykit.io.crop import CropBox, CropBoxes, read_crop_boxes
from niftykit.io.discovery import Subject
from niftykit.io.geometry import Geometry, apply_geometry, crop_volume, invert_geometry, plan_geometry
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.image import Image, check_same_grid, read_image
from niftykit.io.intensity import (
    _window_and_whiten,
    _whiten_into,
    ct_window,
    foreground_mask,
    percentile_clip,
    whiten,
)
from niftykit.io.labels import LabelMapping
from niftykit.io.readers import image_format, planar_affine, planar_to_grey

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
        crop_box_file: CSV of per-subject voxel boxes (:mod:`niftykit.io.crop`) that every
            source of a subject is cropped to first; the sources that name one must name
            the same file.
        pixel_spacing: ``(rows, columns)`` mm of 2-D files (PNG, JPEG, TIFF), which carry
            none (read as 1 mm); other formats keep their header's.
        rgb_to_grey: colour pixels (3 or 4 channels, or a 2-D file's grey + alpha) become
            one BT.601 grey channel.
    """

    name: str
    interp_order: int = 1
    ct_window: Optional[Tuple[float, float]] = None
    percentile_clip: Optional[Tuple[float, float]] = None
    replace_nonfinite: Optional[float] = None
    crop_box_file: Optional[Path] = None
    pixel_spacing: Optional[Tuple[float, float]] = None
    rgb_to_grey: bool = False


@dataclass
class Prepared:
    """A subject's volumes on the network's grid, and how to go back.

    Attributes:
        volumes: ``"image"`` → ``(x, y, z, c)`` float32; ``"label"`` → ``(x, y, z, 1)`` class
            indices (uint8 up to 256 classes, else int32).
        geometry: the plan from the file's grid to the volumes' grid.
        source: the first image source as read, uncropped (its path and affine name the
            output's grid).
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
        sampler: the source of a sampling map (``segmentation.sampler``: a
            probability map for weighted sampling, read as intensities, or a label
            map for balanced sampling when its ``interp_order`` is 0), or None.
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
    sampler: Optional[SourceSettings] = None
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
    _crop_boxes: Optional[CropBoxes] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _ = self.crop_box_file  # raises DataError when two sources name different box files

    # -- reading ----------------------------------------------------------------
    def read_source(self, path: Path, settings: SourceSettings, kind: str = "image") -> Image:
        """One file, with NaN/Inf handled, a 2-D file's pixel spacing and grey conversion
        applied as the source's settings say."""
        image = read_image(path, kind, nonfinite=settings.replace_nonfinite)
        if settings.pixel_spacing is None and not settings.rgb_to_grey:
            return image
        is_planar = image_format(path) == "planar"
        array, affine = image.array, image.affine
        if settings.rgb_to_grey and (image.num_channels in (3, 4)
                                     or (is_planar and image.num_channels == 2)):
            array = planar_to_grey(array)
        if settings.pixel_spacing is not None and is_planar:
            affine = planar_affine(settings.pixel_spacing)
        if array is image.array and affine is image.affine:
            return image
        return Image(array, affine, image.path, image.xform_codes)

    def _read_files(self, subject: Subject) -> List[Image]:
        """The subject's image sources as stored, checked to share one grid."""
        images = [self.read_source(subject.paths[s.name], s) for s in self.images]
        for other in images[1:]:
            check_same_grid(images[0], other, atol=self.grid_tolerance_mm)
        return images

    def read_images(self, subject: Subject) -> List[Image]:
        """The subject's image sources as the intensity steps see them: read, checked to
        share one grid, and cropped to the subject's box (array and affine) if there is one."""
        images = self._read_files(subject)
        box = self.crop_box(subject, images[0])
        if box is None:
            return images
        cut = tuple(slice(a, b) for a, b in zip(box.start, box.stop))
        shift = np.eye(4)
        shift[:3, 3] = box.start
        return [Image(np.ascontiguousarray(image.array[cut]), image.affine @ shift, image.path,
                      image.xform_codes) for image in images]

    @property
    def crop_box_file(self) -> Optional[Path]:
        """The one ``crop_box_file`` of the subject's sources, or None.

        Raises:
            DataError: two sources name different files.
        """
        named = [(s.name, Path(s.crop_box_file)) for s in (*self.images, self.label, self.sampler)
                 if s is not None and s.crop_box_file is not None]
        for name, path in named[1:]:
            if path != named[0][1]:
                raise DataError(f"[inputs.{name}] crop_box_file: {path} differs from "
                                f"[inputs.{named[0][0]}] ({named[0][1]}); a subject's sources "
                                "share one box: name the file once, or the same file")
        return named[0][1] if named else None

    def crop_box(self, subject: Subject, image: Image) -> Optional[CropBox]:
        """The subject's box from ``crop_box_file`` (None without one), checked against ``image``.

        Raises:
            DataError: the file is unreadable, has no row for the subject, or the box does not
                lie inside the image.
        """
        path = self.crop_box_file
        if path is None:
            return None
        if self._crop_boxes is None or self._crop_boxes.path != path:
            self._crop_boxes = read_crop_boxes(path)
        box = self._crop_boxes.find(subject.id, where=str(image.path or subject.id))
        box.check(image.spatial_shape, f"{image.path} (subject '{subject.id}', {path})")
        return box

    def plan(self, image: Image, subject: Optional[Subject] = None) -> Geometry:
        """The geometry plan of a subject, from its first image's header (and its crop box,
        when ``subject`` is given and a ``crop_box_file`` is set)."""
        box = self.crop_box(subject, image) if subject is not None else None
        return plan_geometry(image.spatial_shape, image.affine, axcodes=self.axcodes,
                             pixdim=self.pixdim, padding=self.padding, pad_to=self.pad_to,
                             crop=None if box is None else (box.start, box.stop))

    # -- intensities ----------------------------------------------------------------
    @property
    def _fused(self) -> bool:
        """Whether the intensities are CT windows (or nothing) then whitening over all voxels:
        the common case, done in two float32 passes per channel (``_window_and_whiten``)."""
        return (self.whitening and not self.foreground_only and self.histogram is None and bool(self.images)
                and all(settings.percentile_clip is None for settings in self.images))

    def _image_volume(self, arrays: List[np.ndarray], geometry: Geometry) -> np.ndarray:
        """The image sources' intensities (step 3) on the network's grid (step 2)."""
        if self._fused and _reorients_only(geometry):
            # window and whitening write straight into the reoriented volume: no copy for step 2
            out = np.empty(geometry.shape + (sum(array.shape[3] for array in arrays),), dtype=np.float32)
            target, start = _file_axes(out, geometry), 0
            for settings, array in zip(self.images, arrays):
                stop = start + array.shape[3]
                _window_and_whiten(array, settings.ct_window, out=target[..., start:stop])
                start = stop
            return out
        volume = self._intensities(arrays)
        return apply_geometry(volume, geometry, max(self.images[0].interp_order, 0), self.pad_mode)

    def _intensities(self, arrays: List[np.ndarray]) -> np.ndarray:
        if self._fused:
            channels = [_window_and_whiten(array, settings.ct_window)
                        for settings, array in zip(self.images, arrays)]
            return np.concatenate(channels, axis=-1) if len(channels) > 1 else channels[0]
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
            if (stacked.dtype == np.float32 and stacked.flags.c_contiguous
                    and not any(np.may_share_memory(stacked, array) for array in arrays)):
                _whiten_into(stacked, mask, stacked)  # made above (window, clip, ...): in place
            else:
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

        The crop box (if any) is cut first; intensities are transformed on the
        file's grid (statistics over the real voxels in the box, not over
        padding), then the geometry plan moves every volume to the network's
        grid in one resampling.
        """
        images = self._read_files(subject)
        geometry = self.plan(images[0], subject)
        rest = geometry.after_crop()
        arrays = [crop_volume(image.array, geometry) for image in images]
        volumes = {"image": self._image_volume(arrays, rest)}
        if with_label and self.label is not None:
            label = self.read_source(subject.paths[self.label.name], self.label, "label")
            check_same_grid(images[0], label, atol=self.grid_tolerance_mm)
            if label.num_channels != 1:
                raise DataError(f"{label.path}: a label map has one channel, got {label.num_channels}")
            cropped = Image(crop_volume(label.array, geometry), geometry.cropped_affine, label.path)
            volumes["label"] = apply_geometry(_compact(self._labels(cropped), self.num_classes),
                                              rest, 0, "constant")
        if with_label and self.sampler is not None:
            volumes["sampler"] = self._sampling_map(subject, images[0], geometry)
        return Prepared(volumes=volumes, geometry=geometry, source=images[0])

    def _sampling_map(self, subject: Subject, image: Image, geometry: Geometry) -> np.ndarray:
        """The sampling map on the network's grid (zero in padding: never sampled there)."""
        settings = self.sampler
        kind = "label" if settings.interp_order == 0 else "image"
        sampling = self.read_source(subject.paths[settings.name], settings, kind)
        check_same_grid(image, sampling, atol=self.grid_tolerance_mm)
        if sampling.num_channels != 1:
            raise DataError(f"{sampling.path}: a sampling map has one channel, "
                            f"got {sampling.num_channels}")
        return apply_geometry(sampling.array, geometry, max(settings.interp_order, 0), "constant")

    def restore(self, output: np.ndarray, geometry: Geometry, *, labels: bool,
                fill: Optional[Sequence[float]] = None) -> np.ndarray:
        """A network output on the volumes' grid → the input file's grid.

        Args:
            output: ``(x, y, z)`` class indices (``labels``) or ``(x, y, z, c)`` values.
            geometry: the subject's plan.
            labels: indices (nearest, then mapped back to the input's codes) or
                continuous values such as probabilities (linear).
            fill: the values outside the subject's crop box (one, or one per channel).
                By default class 0 for ``labels``; for values, ``[1, 0, ..., 0]`` (background
                probability 1) when the output has ``num_classes`` channels and the
                preprocessing has a label source (a segmentation), else 0.
        """
        array = output[..., None] if output.ndim == 3 else output
        if fill is None:
            segmenting = self.label is not None and array.shape[-1] == self.num_classes > 1
            fill = np.eye(array.shape[-1])[0] if segmenting and not labels else [0.0]
        restored = invert_geometry(array, geometry, 0 if labels else 1, fill)
        if labels:
            restored = restored[..., 0]
            if self.label_mapping is not None:
                return self.label_mapping.invert(restored)
        return restored


def _reorients_only(geometry: Geometry) -> bool:
    """Whether step 2 only permutes and flips the axes (no resampling, no padding)."""
    return not geometry.resamples and not any(geometry.pad_before) and not any(geometry.pad_after)


def _file_axes(volume: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The view of a volume on the reoriented grid in the file's axis order (the inverse of the
    reorientation, as :func:`~niftykit.io.geometry.invert_geometry` undoes it)."""
    inverse = np.zeros((3, 2))
    inverse[geometry.ornt[:, 0].astype(int)] = np.column_stack([np.arange(3), geometry.ornt[:, 1]])
    return ornts.apply_orientation(volume, inverse)


def _compact(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as uint8 when they fit (a quarter of int32's bytes to cache, cut,
    augment and queue); the losses cast them back."""
    return labels.astype(np.uint8) if num_classes <= 256 else labels


def _modality(settings: SourceSettings, channel: int, array: np.ndarray) -> str:
    return settings.name if array.shape[-1] == 1 else f"{settings.name}_{channel}"


def modality_names(sources: Sequence[SourceSettings], images: Sequence[Image]) -> List[str]:
    """Histogram modality names, one per channel: the source name, or ``<name>_<c>``
    for the channels of a multi-channel source."""
    return [_modality(s, c, image.array) for s, image in zip(sources, images)
            for c in range(image.num_channels)]

