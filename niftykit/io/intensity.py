"""Intensity normalisation: foreground masks, whitening, CT windows, percentile clipping.

The foreground mask follows NiftyNet's ``niftynet/layer/binary_masking.py``:
a per-channel threshold (Otsu, N., "A threshold selection method from
gray-level histograms", IEEE TSMC 1979; a fixed 0.0; or the mean), two
binary dilations with scipy's default 6-connected 3x3x3 cross, then hole
filling. Whitening is NiftyNet's ``niftynet/layer/mean_variance_normalisation.py``:
``(x - mean) / max(std, 1e-5)`` with the statistics taken over the mask.
The CT window and percentile clipping correspond to MONAI's
``ScaleIntensityRange`` and ``ClipIntensityPercentiles``.

Every function takes a channels-last ``(x, y, z, channels)`` array and returns
a new C-contiguous float32 (or bool) array; inputs are never modified.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from niftykit.errors import DataError

__all__ = ["FOREGROUND_TYPES", "MULTIMOD_FOREGROUND_TYPES", "foreground_mask", "whiten", "ct_window", "percentile_clip"]

logger = logging.getLogger("niftykit")

#: NiftyNet's ``foreground_type`` values.
FOREGROUND_TYPES = ("otsu_plus", "otsu_minus", "threshold_plus", "threshold_minus", "mean_plus")
#: NiftyNet's ``multimod_foreground_type`` values.
MULTIMOD_FOREGROUND_TYPES = ("and", "or", "multi")
_MIN_STD = 1e-5
#: voxels per block of the element-wise passes: their float64 temporaries (512 KiB) stay in cache.
_BLOCK = 1 << 16


def _check_4d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 4:
        raise ValueError(f"{name}: array must be (x, y, z, channels), got shape {array.shape}")
    return array


def _threshold_mask(channel: np.ndarray, foreground_type: str) -> np.ndarray:
    """``(x, y, z)`` bool: the voxels above/below this channel's threshold."""
    if foreground_type in ("threshold_plus", "threshold_minus"):
        threshold = 0.0
    elif foreground_type == "mean_plus":
        threshold = float(channel.mean(dtype=np.float64))
    elif channel.min() == channel.max():
        threshold = float(channel.flat[0])  # Otsu is undefined on one value: empty mask
    else:
        threshold = float(threshold_otsu(channel))
    return channel < threshold if foreground_type.endswith("_minus") else channel > threshold


def _dilate_and_fill(mask: np.ndarray) -> np.ndarray:
    """Two dilations (6-connected cross) then hole filling, as NiftyNet.

    A single-slice volume ``(x, y, 1)`` is processed in 2-D: in 3-D every
    voxel of it touches the border, so no hole would ever be filled.
    """
    flat = mask.shape[2] == 1
    work = mask[:, :, 0] if flat else mask
    work = ndimage.binary_dilation(work, iterations=2)
    work = ndimage.binary_fill_holes(work)
    return work[:, :, None] if flat else work


def _non_empty(mask: np.ndarray, what: str) -> np.ndarray:
    if mask.any():
        return mask
    logger.warning("foreground mask of %s is empty; using the whole volume", what)
    return np.ones_like(mask)


def foreground_mask(
    array: np.ndarray, foreground_type: str = "otsu_plus", multimod_foreground_type: str = "and"
) -> np.ndarray:
    """Find the foreground of each channel and combine the channels.

    Channels that are all zero (a missing modality, as NiftyNet fills them)
    take no part in ``"and"``/``"or"``. An empty result becomes the whole
    volume, with a warning on the ``niftykit`` logger.

    Args:
        array: ``(x, y, z, channels)`` intensities.
        foreground_type: one of :data:`FOREGROUND_TYPES`: ``otsu_plus`` keeps
            voxels above the Otsu threshold, ``otsu_minus`` below it,
            ``threshold_plus``/``threshold_minus`` above/below 0.0,
            ``mean_plus`` above the channel mean.
        multimod_foreground_type: ``"and"``, ``"or"`` (one mask for all
            channels) or ``"multi"`` (one mask per channel).

    Returns:
        ``(x, y, z)`` bool for ``"and"``/``"or"``, ``(x, y, z, channels)``
        bool for ``"multi"``.

    Raises:
        ValueError: an unknown type, or an array that is not 4-D.
    """
    array = _check_4d(array, "foreground_mask")
    if foreground_type not in FOREGROUND_TYPES:
        raise ValueError(f"foreground_type '{foreground_type}' is not one of {', '.join(FOREGROUND_TYPES)}")
    if multimod_foreground_type not in MULTIMOD_FOREGROUND_TYPES:
        raise ValueError(
            f"multimod_foreground_type '{multimod_foreground_type}' is not one of "
            f"{', '.join(MULTIMOD_FOREGROUND_TYPES)}"
        )
    masks = [_dilate_and_fill(_threshold_mask(array[..., c], foreground_type)) for c in range(array.shape[3])]
    if multimod_foreground_type == "multi":
        masks = [_non_empty(mask, f"channel {c}") for c, mask in enumerate(masks)]
        return np.ascontiguousarray(np.stack(masks, axis=-1))
    present = [mask for c, mask in enumerate(masks) if np.any(array[..., c])]
    if not present:
        return _non_empty(np.zeros(array.shape[:3], dtype=bool), "an all-zero image")
    combine = np.logical_and if multimod_foreground_type == "and" else np.logical_or
    return _non_empty(combine.reduce(present), f"the channels combined by '{multimod_foreground_type}'")


def _channel_masks(mask: np.ndarray | None, shape: tuple, name: str) -> list:
    """One ``(x, y, z)`` bool mask (or None) per channel, checked against ``shape``."""
    if mask is None:
        return [None] * shape[3]
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == shape[:3]:
        masks = [mask] * shape[3]
    elif mask.shape == shape:
        masks = [mask[..., c] for c in range(shape[3])]
    else:
        raise ValueError(f"{name}: mask shape {mask.shape} is neither {shape[:3]} nor {shape}")
    for c, channel_mask in enumerate(masks):
        if not channel_mask.any():
            raise DataError(f"{name}: the mask of channel {c} is empty; give a mask with foreground voxels, or none")
    return masks


def _masked_values(channel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return channel.ravel() if mask is None else channel[mask]


def _row_blocks(shape: tuple) -> list:
    """Slices of axis 0 holding about ``_BLOCK`` voxels each (at least one row)."""
    rows = max(1, _BLOCK // max(1, int(np.prod(shape[1:], dtype=np.int64))))
    return [slice(start, min(start + rows, shape[0])) for start in range(0, shape[0], rows)] or [slice(0, 0)]


def _rows(mask: np.ndarray | None, rows: slice) -> np.ndarray | None:
    return None if mask is None else mask[rows]


def _as_float64(block: np.ndarray, work: np.ndarray) -> np.ndarray:
    """``block`` cast to float64 into the first rows of the reusable ``work`` buffer."""
    target = work[: block.shape[0]]
    target[...] = block
    return target


def whiten(array: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Zero mean, unit standard deviation per channel (NiftyNet's ``whitening``).

    The mean and standard deviation are measured over the mask (all voxels
    when ``mask`` is None); every voxel, inside the mask or not, is
    transformed with them.

    Args:
        array: ``(x, y, z, channels)`` intensities.
        mask: ``(x, y, z)`` or ``(x, y, z, channels)`` bool, or None.

    Returns:
        ``(x, y, z, channels)`` float32, ``(x - mean) / max(std, 1e-5)``.

    Raises:
        ValueError: a mask of the wrong shape.
        DataError: a channel's mask is empty.
    """
    array = _check_4d(array, "whiten")
    out = np.empty(array.shape, dtype=np.float32)
    _whiten_into(array, mask, out)
    return out


def _whiten_into(array: np.ndarray, mask: np.ndarray | None, out: np.ndarray) -> None:
    """:func:`whiten` of ``array`` written into ``out``, which may be ``array`` itself.

    Block by block (:func:`_row_blocks`) in float64, as :func:`whiten` always computed: two
    passes for the mean and the standard deviation, one to write.
    """
    masks = _channel_masks(mask, array.shape, "whiten")
    if array.size == 0:
        return
    for c, channel_mask in enumerate(masks):
        channel = array[..., c]
        blocks = _row_blocks(channel.shape)
        work = np.empty((blocks[0].stop - blocks[0].start, *channel.shape[1:]), dtype=np.float64)
        total, count = 0.0, 0
        for rows in blocks:
            values = _masked_values(_as_float64(channel[rows], work), _rows(channel_mask, rows))
            total += float(values.sum())
            count += values.size
        mean = total / count
        squares = 0.0
        for rows in blocks:
            values = _masked_values(_as_float64(channel[rows], work), _rows(channel_mask, rows))
            values -= mean
            squares += float(np.einsum("i,i->", values, values))
        scale = max(np.sqrt(squares / count), _MIN_STD)
        target = out[..., c]
        for rows in blocks:
            values = _as_float64(channel[rows], work)
            values -= mean
            values /= scale
            target[rows] = values


def _window_and_whiten(array: np.ndarray, window: tuple[float, float] | None = None,
                       out: np.ndarray | None = None) -> np.ndarray:
    """``whiten(ct_window(array, *window))``, or ``whiten(array)`` without a window, fused.

    The preprocessing's common case (whitening over all voxels, optionally after a CT window)
    in two float32 passes over each channel: the window's rescaling and the whitening are both
    affine maps, so whitening the rescaled window equals whitening the clipped values. Pass one
    clips into the output, minus a shift close to the mean, and sums the values and their
    squares (block by block, so that numpy's pairwise float32 sums stay accurate; the blocks'
    sums are added in float64); pass two maps the output in place. The result agrees with
    :func:`ct_window` then :func:`whiten` up to float32 rounding (a few units in the last place).

    Args:
        array: ``(x, y, z, channels)`` intensities.
        window: ``(low, high)`` (e.g. HU) with ``high > low``, or None.
        out: float32 array of ``array``'s shape to write into (any strides, e.g. a reoriented
            view of the caller's output), or None for a new array.

    Returns:
        ``out``, or a new ``(x, y, z, channels)`` float32 array: zero mean and unit standard
        deviation per channel (``std`` floored at 1e-5 as in :func:`whiten`).

    Raises:
        ValueError: an array that is not 4-D, or ``high <= low``.
    """
    array = _check_4d(array, "_window_and_whiten")
    if window is not None and not window[1] > window[0]:
        raise ValueError(f"ct_window: high ({window[1]}) must be greater than low ({window[0]})")
    if out is None:
        out = np.empty(array.shape, dtype=np.float32)
    elif out.shape != array.shape or out.dtype != np.float32:
        raise ValueError(f"_window_and_whiten: out must be float32 {array.shape}, got {out.dtype} {out.shape}")
    if array.size == 0:
        return out
    for c in range(array.shape[3]):
        channel, target = array[..., c], out[..., c]
        sample = channel[::8, ::8, ::8]  # the shift: a rough mean, so that the squares do not cancel
        if window is not None:
            sample = np.clip(sample, *window)
        shift = np.float32(sample.mean(dtype=np.float64))
        blocks = _row_blocks(channel.shape)
        work = np.empty((blocks[0].stop - blocks[0].start, *channel.shape[1:]), dtype=np.float32)
        total = total_squares = 0.0
        for rows in blocks:
            values = work[: rows.stop - rows.start]  # contiguous: numpy sums it pairwise
            if window is None:
                values[...] = channel[rows]
            else:
                np.clip(channel[rows], window[0], window[1], out=values)
            values -= shift
            total += float(values.sum())
            target[rows] = values
            np.square(values, out=values)
            total_squares += float(values.sum())
        mean = total / channel.size  # of (value - shift)
        std = np.sqrt(max(total_squares / channel.size - mean * mean, 0.0))
        # whitening the rescaled window: (x - mean) * s / max(std * s, 1e-5), s = 1 / (high - low)
        rescale = 1.0 if window is None else 1.0 / (float(window[1]) - float(window[0]))
        factor = np.float32(rescale / max(std * rescale, _MIN_STD))
        mean = np.float32(mean)
        for rows in blocks:
            values = target[rows]
            values -= mean
            values *= factor
    return out


def ct_window(
    array: np.ndarray, low: float, high: float, out_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Clip to an intensity window (e.g. Hounsfield units) and rescale it linearly.

    Args:
        array: intensities, any shape (``(x, y, z, channels)`` by convention).
        low: lower window edge, e.g. -160 HU for the abdomen.
        high: upper window edge, e.g. 240 HU; must exceed ``low``.
        out_range: ``(new_low, new_high)`` that ``low`` and ``high`` map to.

    Returns:
        float32 array of the same shape with values in ``out_range``.

    Raises:
        ValueError: ``high <= low``.
    """
    if not high > low:
        raise ValueError(f"ct_window: high ({high}) must be greater than low ({low})")
    out_low, out_high = (float(v) for v in out_range)
    array = np.asarray(array)
    scale = (out_high - out_low) / (high - low)
    if array.ndim == 0 or array.size == 0:
        clipped = np.clip(np.asarray(array, dtype=np.float64), low, high)
        return np.ascontiguousarray(out_low + (clipped - low) * scale, dtype=np.float32)
    # block by block in float64 (the temporaries stay in cache), the same arithmetic as
    # out_low + (clip(x, low, high) - low) * scale on the whole float64 array
    out = np.empty(array.shape, dtype=np.float32)
    blocks = _row_blocks(array.shape)
    work = np.empty((blocks[0].stop - blocks[0].start, *array.shape[1:]), dtype=np.float64)
    for rows in blocks:
        values = _as_float64(array[rows], work)
        np.clip(values, low, high, out=values)
        values -= low
        values *= scale
        values += out_low
        out[rows] = values
    return out


def percentile_clip(
    array: np.ndarray, low_pct: float, high_pct: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """Clip each channel to its own percentiles.

    Args:
        array: ``(x, y, z, channels)`` intensities.
        low_pct: lower percentile in [0, 100], e.g. 0.5.
        high_pct: upper percentile in [0, 100], e.g. 99.5; must exceed ``low_pct``.
        mask: ``(x, y, z)`` or ``(x, y, z, channels)`` bool; the percentiles
            are measured inside it (every voxel is clipped). None: all voxels.

    Returns:
        ``(x, y, z, channels)`` float32.

    Raises:
        ValueError: percentiles out of order or range, a mask of the wrong shape.
        DataError: a channel's mask is empty.
    """
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"percentile_clip: need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    array = _check_4d(array, "percentile_clip")
    masks = _channel_masks(mask, array.shape, "percentile_clip")
    out = np.empty(array.shape, dtype=np.float32)
    for c, channel_mask in enumerate(masks):
        channel = array[..., c]
        low, high = np.percentile(_masked_values(channel, channel_mask), [low_pct, high_pct])
        out[..., c] = np.clip(channel, low, high)
    return out
