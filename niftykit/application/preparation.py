"""From the config to a :class:`~niftykit.io.preprocess.Preprocessor`, and its data-dependent parts.

The config stops here: :func:`build_preprocessor` turns input sections and
``[NETWORK]`` switches into typed settings; :func:`fit_preprocessor` learns
Nyúl landmarks and the label mapping on the training subjects (or loads
them from ``network.histogram_ref_file``, NiftyNet's file for both).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from niftykit.errors import ConfigError, DataError
from niftykit.io import Subject, read_image
from niftykit.io.histogram import HistogramStandardiser
from niftykit.io.intensity import foreground_mask
from niftykit.io.labels import LabelMapping
from niftykit.io.preprocess import Preprocessor, SourceSettings, modality_names

__all__ = ["build_preprocessor", "fit_preprocessor"]

log = logging.getLogger("niftykit")


def _settings(config: Any, name: str) -> SourceSettings:
    section = config.inputs[name]
    return SourceSettings(name=name, interp_order=section.interp_order,
                          ct_window=section.ct_window, percentile_clip=section.percentile_clip,
                          replace_nonfinite=section.replace_nonfinite,
                          crop_box_file=section.crop_box_file,
                          pixel_spacing=section.pixel_spacing, rgb_to_grey=section.rgb_to_grey)


def _geometry(config: Any, names: Sequence[str]) -> Tuple[Any, Any]:
    """``axcodes`` and ``pixdim`` of the first source; the others must agree or be unset."""
    first = config.inputs[names[0]]
    for name in names[1:]:
        other = config.inputs[name]
        for key in ("axcodes", "pixdim"):
            value = getattr(other, key)
            if value is not None and value != getattr(first, key):
                raise ConfigError(
                    f"{config.source}: [inputs.{name}] {key}: {list(value)} differs from "
                    f"[inputs.{names[0]}] ({getattr(first, key)}); a subject's sources share one grid")
    return first.axcodes, first.pixdim


def build_preprocessor(config: Any, task: Any, num_classes: int) -> Preprocessor:
    """The preprocessing the config asks for (nothing learnt yet)."""
    names = list(task.image) + list(task.label[:1]) + list(task.sampler[:1])
    axcodes, pixdim = _geometry(config, names)
    net = config.network
    return Preprocessor(
        images=[_settings(config, name) for name in task.image],
        label=_settings(config, task.label[0]) if task.label else None,
        sampler=_settings(config, task.sampler[0]) if task.sampler else None,
        num_classes=num_classes, axcodes=axcodes, pixdim=pixdim,
        padding=net.volume_padding_size, pad_to=net.volume_padding_to_size,
        pad_mode=net.volume_padding_mode, whitening=net.whitening,
        foreground_only=net.normalise_foreground_only, foreground_type=net.foreground_type,
        multimod_foreground_type=net.multimod_foreground_type,
        grid_tolerance_mm=config.system.grid_tolerance_mm)


def fit_preprocessor(config: Any, task: Any, pre: Preprocessor, phase: str,
                     subjects: Sequence[Subject]) -> Preprocessor:
    """``pre`` with its landmarks and label mapping learnt (training) or loaded."""
    ref = Path(config.network.histogram_ref_file)
    histogram, mapping = pre.histogram, pre.label_mapping
    if config.network.normalisation and histogram is None and phase != "evaluation":
        histogram = _histogram(config, pre, phase, subjects, ref)
    if task.label_normalisation and mapping is None and pre.label is not None:
        mapping = _label_mapping(config, pre, phase, subjects, ref)
        if mapping.num_classes != pre.num_classes:
            raise ConfigError(
                f"{config.source}: [segmentation] num_classes: is {pre.num_classes} but the labels "
                f"hold {mapping.num_classes} codes ({', '.join(map(str, mapping.codes))}; "
                f"mapping in {ref})")
    return dataclasses.replace(pre, histogram=histogram, label_mapping=mapping)


def _need(ref: Path, what: str, phase: str) -> DataError:
    return DataError(f"{ref} has no {what}; they are learnt by `niftykit train` "
                     f"(needed for {phase})")


def _histogram(config: Any, pre: Preprocessor, phase: str, subjects: Sequence[Subject],
               ref: Path) -> HistogramStandardiser:
    net = config.network
    options = dict(cutoff=tuple(net.cutoff), norm_type=net.norm_type)
    if not subjects:
        raise DataError(f"no subject to learn or check the landmarks of {ref} on")
    names = modality_names(pre.images, pre.read_images(subjects[0]))
    if ref.exists() and _has_lines(ref, names[0] + " "):
        return HistogramStandardiser.load(ref, names, **options)
    if phase != "training":
        raise _need(ref, "histogram landmarks", phase)
    log.info("learning histogram landmarks (Nyúl) on %d training subjects -> %s",
             len(subjects), ref)
    standardiser = HistogramStandardiser(**options)
    images = [pre.read_images(subject) for subject in subjects]
    for index, name in enumerate(names):
        channels = [_channel(subject_images, pre, index) for subject_images in images]
        masks = ([foreground_mask(c[..., None], net.foreground_type) for c in channels]
                 if net.normalise_foreground_only else None)
        standardiser.fit(channels, name, masks)
    standardiser.save(ref)
    return standardiser


def _channel(images: List[Any], pre: Preprocessor, index: int) -> Any:
    """The ``index``-th channel over a subject's stacked image sources, ``(x, y, z)``."""
    for image in images:
        if index < image.num_channels:
            return image.array[..., index]
        index -= image.num_channels
    raise DataError("subjects differ in their number of image channels")


def _label_mapping(config: Any, pre: Preprocessor, phase: str, subjects: Sequence[Subject],
                   ref: Path) -> LabelMapping:
    source = pre.label.name
    if ref.exists() and _has_lines(ref, f"label_{source}-from"):
        return LabelMapping.load(ref, source)
    if phase != "training":
        raise _need(ref, f"label mapping for '{source}'", phase)
    labels = [read_image(subject.paths[source], kind="label").array for subject in subjects]
    mapping = LabelMapping.learn(labels)
    log.info("label_normalisation: codes %s -> 0..%d, saved in %s",
             ", ".join(map(str, mapping.codes)), mapping.num_classes - 1, ref)
    mapping.save(ref, source)
    return mapping


def _has_lines(path: Path, prefix: str) -> bool:
    return any(line.startswith(prefix) for line in path.read_text(encoding="utf-8").splitlines())


def describe(pre: Optional[Preprocessor]) -> str:
    """A one-line summary for the console."""
    if pre is None:
        return "no preprocessing"
    parts = []
    if pre.axcodes:
        parts.append(f"reorient to {''.join(pre.axcodes)}")
    if pre.pixdim:
        parts.append(f"resample to {list(pre.pixdim)} mm")
    if pre.histogram is not None:
        parts.append("Nyúl standardisation")
    if pre.whitening:
        parts.append("whitening" + (" (foreground)" if pre.foreground_only else ""))
    if pre.label_mapping is not None:
        parts.append(f"label codes {list(map(int, pre.label_mapping.codes))} -> 0..{pre.label_mapping.num_classes - 1}")
    return ", ".join(parts) or "no preprocessing"
