"""Histogram standardisation (Nyúl) and its reference file.

Nyúl L.G., Udupa J.K., "On standardizing the MR image intensity scale",
Magnetic Resonance in Medicine 42(6):1072-1081, 1999; and Nyúl, Udupa, Zhang,
"New variants of a method of MRI scale standardization", IEEE TMI
19(2):143-150, 2000. The variant is NiftyNet's
(``niftynet/utilities/histogram_standardisation.py``,
``niftynet/layer/histogram_normalisation.py``): each training image's
intensity landmarks (percentiles) are mapped linearly so that its
``[cutoff[0], cutoff[1]]`` percentile range spans ``scale``; the standard
landmarks are their mean; a new image is mapped piecewise-linearly from its
own landmarks onto the standard ones, the end segments extended beyond the
cutoffs.

The reference file is NiftyNet's ``histogram_ref_file``: one line per key,
``<key> v1 v2 ... vn``. Intensity modalities store all 13 landmarks
(cutoff[0], 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90 %, cutoff[1]) whatever
``norm_type`` is, as NiftyNet did, so files move freely between the two;
``norm_type`` chooses which of them the transform uses. The same file holds
the discrete label mappings (:mod:`niftykit.io.labels`); lines a writer does
not own are kept.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from niftykit.errors import DataError
from niftykit.io.writer import write_text
from niftykit.typing import PathLike

__all__ = ["NORM_TYPES", "HistogramStandardiser", "read_reference_file", "update_reference_file"]

#: Landmark percentiles between the two cutoffs (NiftyNet's order).
INNER_PERCENTILES = (10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0)
#: ``norm_type`` -> indices of the 13 stored landmarks that the transform uses.
NORM_TYPES: dict[str, tuple] = {
    "percentile": (0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12),
    "quartile": (0, 3, 6, 9, 12),
    "median": (0, 6, 12),
}
NUM_LANDMARKS = 13
_KEY = re.compile(r"^[^\s]+$")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
        raise DataError(f"cannot read histogram reference file {path}: {reason}") from None


def read_reference_file(path: PathLike) -> dict[str, list[str]]:
    """Read a NiftyNet reference file: ``{key: [value tokens]}``.

    Lines with fewer than two tokens are skipped, as NiftyNet did; the last
    line of a repeated key wins.

    Raises:
        DataError: the file is missing or unreadable.
    """
    entries = {}
    for line in _read_lines(Path(path)):
        tokens = line.split()
        if len(tokens) >= 2:
            entries[tokens[0]] = tokens[1:]
    return entries


def update_reference_file(path: PathLike, entries: Mapping[str, Sequence[str]], *, overwrite: bool = True) -> Path:
    """Write ``entries`` into a reference file, keeping every other line.

    A key's existing line is replaced in place; new keys are appended. The
    file is replaced atomically.

    Raises:
        DataError: the file exists and ``overwrite`` is False, or it cannot be read or written.
    """
    path = Path(path)
    for key in entries:
        if not _KEY.match(key):
            raise ValueError(f"reference file key {key!r} must be one word without spaces")
    lines = _read_lines(path) if path.exists() else []
    pending = dict(entries)
    kept = []
    for line in lines:
        tokens = line.split()
        key = tokens[0] if tokens else None
        if key in pending:
            kept.append(" ".join([key, *pending.pop(key)]))
        elif key not in entries:
            kept.append(line)
    kept += [" ".join([key, *values]) for key, values in pending.items()]
    return write_text(path, "\n".join(kept) + "\n", overwrite=overwrite)


def _cutoff_checked(cutoff: Sequence[float], norm_type: str) -> tuple:
    if norm_type not in NORM_TYPES:
        raise ValueError(f"norm_type '{norm_type}' is not one of {', '.join(NORM_TYPES)}")
    values = [float(v) for v in cutoff]
    if len(values) != 2:
        raise ValueError(f"cutoff must be two fractions (low, high), got {tuple(cutoff)}")
    low, high = values
    used = [INNER_PERCENTILES[i - 1] / 100.0 for i in NORM_TYPES[norm_type][1:-1]]
    if not (0.0 <= low < used[0] and used[-1] < high <= 1.0):
        raise ValueError(
            f"cutoff ({low}, {high}) must satisfy 0 <= cutoff[0] < {used[0]} and {used[-1]} < cutoff[1] <= 1 "
            f"for norm_type '{norm_type}'"
        )
    return low, high


class HistogramStandardiser:
    """Learn standard intensity landmarks per modality and map images onto them.

    Args:
        cutoff: ``(low, high)`` fractions in [0, 1]; the intensity percentiles
            that bound the landmarks (NiftyNet's ``cutoff``, default 1 % / 99 %).
        norm_type: which landmarks the transform uses (:data:`NORM_TYPES`):
            ``"percentile"`` (cutoff[0], 10, 20, 30, 40, 50, 60, 70, 80, 90 %,
            cutoff[1]: NiftyNet stores 25 and 75 % too but skips them here),
            ``"quartile"`` (cutoff[0], 25, 50, 75 %, cutoff[1]) or
            ``"median"`` (cutoff[0], 50 %, cutoff[1]).
        scale: ``(s1, s2)``, the standard range the cutoffs map to during
            training (NiftyNet: 0 to 100).

    Attributes:
        landmarks: modality name -> ``(13,)`` float64 standard landmarks.

    Raises:
        ValueError: unknown ``norm_type``, cutoffs outside the landmarks, ``s2 <= s1``.
    """

    def __init__(
        self,
        cutoff: Sequence[float] = (0.01, 0.99),
        norm_type: str = "percentile",
        scale: Sequence[float] = (0.0, 100.0),
    ) -> None:
        self.cutoff = _cutoff_checked(cutoff, norm_type)
        self.norm_type = norm_type
        self.scale = tuple(float(v) for v in scale)
        if len(self.scale) != 2 or not self.scale[1] > self.scale[0]:
            raise ValueError(f"scale must be (low, high) with high > low, got {tuple(scale)}")
        self.landmarks: dict[str, np.ndarray] = {}

    def _image_landmarks(self, array: np.ndarray, mask: np.ndarray | None, where: str) -> np.ndarray:
        """``(13,)`` float64 percentiles of ``array`` over ``mask``."""
        array = np.asarray(array)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != array.shape:
                raise ValueError(f"{where}: mask shape {mask.shape} differs from image shape {array.shape}")
        values = array.ravel() if mask is None else array[mask]
        if values.size == 0:
            raise DataError(f"{where}: the mask is empty; no intensities to standardise")
        fractions = np.array([self.cutoff[0], *(p / 100.0 for p in INNER_PERCENTILES), self.cutoff[1]])
        return np.percentile(values, 100.0 * fractions).astype(np.float64)

    def fit(
        self,
        arrays: Iterable[np.ndarray],
        modality: str,
        masks: Iterable[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """Learn the standard landmarks of one modality from training images.

        Args:
            arrays: one ``(x, y, z)`` single-channel volume per training
                subject; read one at a time, so a generator keeps memory flat.
            modality: the name the landmarks are stored under (the input
                source, e.g. ``"T1"``).
            masks: ``(x, y, z)`` bool foreground per array (or None entries),
                or None for whole images.

        Returns:
            ``(13,)`` float64 standard landmarks, first ``scale[0]``, last ``scale[1]``.

        Raises:
            DataError: no images, an empty mask, or an image with the same
                intensity at both cutoffs.
            ValueError: more or fewer masks than arrays.
        """
        if not modality or not _KEY.match(modality):
            raise ValueError(f"modality {modality!r} must be one word without spaces")
        pairs = zip(arrays, itertools.repeat(None)) if masks is None else zip(arrays, masks, strict=True)
        low, high = self.scale
        mapped = []
        for index, (array, mask) in enumerate(pairs):
            where = f"training image {index} of modality {modality}"
            points = self._image_landmarks(array, mask, where)
            span = points[-1] - points[0]
            if not span > 0:
                raise DataError(
                    f"{where} has the same intensity ({points[0]:g}) at both cutoff percentiles "
                    f"{self.cutoff}; mask its foreground or check the image"
                )
            mapped.append(low + (high - low) * (points - points[0]) / span)
        if not mapped:
            raise DataError(f"no training images to learn the histogram landmarks of modality {modality}")
        self.landmarks[modality] = np.mean(mapped, axis=0)
        return self.landmarks[modality].copy()

    def transform(self, array: np.ndarray, modality: str, mask: np.ndarray | None = None) -> np.ndarray:
        """Map an image's intensities onto the standard landmarks of its modality.

        The landmarks of ``norm_type`` are measured over ``mask`` (or the whole
        image); every voxel is mapped, those beyond the cutoffs by the end
        segments extended. Tied landmarks get a flat segment, as in NiftyNet.

        Args:
            array: ``(x, y, z)`` single-channel volume (any shape works).
            modality: a name in :attr:`landmarks`.
            mask: bool, same shape as ``array``, or None.

        Returns:
            float32 C-contiguous array, same shape.

        Raises:
            DataError: no landmarks learnt or loaded for ``modality``, or an empty mask.
        """
        if modality not in self.landmarks:
            known = ", ".join(sorted(self.landmarks)) or "none"
            raise DataError(
                f"no histogram landmarks for modality '{modality}' (known: {known}); "
                "learn them from the training images or load the histogram reference file"
            )
        used = list(NORM_TYPES[self.norm_type])
        source = self._image_landmarks(array, mask, f"image of modality {modality}")[used]
        target = self.landmarks[modality][used]
        d_source, d_target = np.diff(source), np.diff(target)
        slope = np.divide(d_target, d_source, out=np.zeros_like(d_target), where=d_source > 0)
        array = np.asarray(array)
        out = np.interp(array, source, target).astype(np.float32)
        for beyond, end, end_slope in ((array < source[0], 0, slope[0]), (array > source[-1], -1, slope[-1])):
            out[beyond] = target[end] + end_slope * (array[beyond] - source[end])
        return np.ascontiguousarray(out)

    def save(self, path: PathLike, *, overwrite: bool = True) -> None:
        """Write every modality's landmarks to a NiftyNet reference file.

        One line ``<modality> v1 ... v13`` per modality replaces that
        modality's line; other lines (other modalities, ``label_...``
        mappings) are kept. Written atomically.

        Raises:
            DataError: the file exists and ``overwrite`` is False, or it cannot be written.
        """
        entries = {mod: [repr(float(v)) for v in values] for mod, values in self.landmarks.items()}
        update_reference_file(path, entries, overwrite=overwrite)

    @classmethod
    def load(
        cls,
        path: PathLike,
        modalities: Sequence[str],
        cutoff: Sequence[float] = (0.01, 0.99),
        norm_type: str = "percentile",
        scale: Sequence[float] = (0.0, 100.0),
    ) -> HistogramStandardiser:
        """Read the landmarks of ``modalities`` from a NiftyNet reference file.

        Raises:
            DataError: the file is missing or unreadable, lacks a modality,
                or a modality's line is not 13 finite numbers that increase
                over the landmarks ``norm_type`` uses.
        """
        path = Path(path)
        standardiser = cls(cutoff=cutoff, norm_type=norm_type, scale=scale)
        entries = read_reference_file(path)
        missing = [mod for mod in modalities if mod not in entries]
        if missing:
            known = [key for key in entries if not re.search(r"-(from|to)$", key)]
            raise DataError(
                f"histogram reference file {path} has landmarks for {', '.join(known) or 'no modality'} "
                f"but not {', '.join(missing)}; delete it to learn it again"
            )
        for mod in modalities:
            standardiser.landmarks[mod] = _parse_landmarks(entries[mod], mod, path, norm_type)
        return standardiser


def _parse_landmarks(tokens: Sequence[str], modality: str, path: Path, norm_type: str) -> np.ndarray:
    """Check one modality's line: 13 finite numbers, increasing where used."""
    where = f"histogram reference file {path}, line '{modality}'"
    fix = "delete the line (or the file) to learn it again"
    try:
        values = np.array([float(token) for token in tokens], dtype=np.float64)
    except ValueError:
        raise DataError(f"{where}: the values are not all numbers; {fix}") from None
    if values.size != NUM_LANDMARKS:
        raise DataError(
            f"{where}: {values.size} landmarks, expected {NUM_LANDMARKS} (cutoff[0], 10, 20, 25, 30, 40, 50, "
            f"60, 70, 75, 80, 90 %, cutoff[1]) for norm_type '{norm_type}'; {fix}"
        )
    used = values[list(NORM_TYPES[norm_type])]
    if not np.all(np.isfinite(values)) or np.any(np.diff(used) < 0) or not used[-1] > used[0]:
        raise DataError(f"{where}: the landmarks are not finite and increasing; {fix}")
    return values
