"""Volume padding (NiftyNet's ``volume_padding_size`` / ``volume_padding_to_size``) and its inverse.

Padding is planned once per subject (:func:`pad_widths`), applied to every
source with :func:`pad_array` and undone on network outputs with
:func:`crop_array`. A crop box (``crop_box_file``) is the reverse: :func:`crop_array`
cuts it out of the file's grid and :func:`pad_channels` puts network outputs back,
with a constant per channel outside. Sizes are in voxels along ``(x, y, z)``; an axis of size 1
(the slice axis of a 2-D image) is never padded, so a 2-D image stays 2-D.

``volume_padding_mode`` takes :func:`numpy.pad` modes, as in NiftyNet:
``"minimum"`` (NiftyNet's default) pads each line with that line's minimum,
``"constant"`` with zeros, ``"edge"``, ``"reflect"``, ``"symmetric"``...
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from niftykit.typing import Shape3

__all__ = ["PAD_MODES", "pad_widths", "pad_array", "pad_channels", "crop_array"]

#: :func:`numpy.pad` modes accepted as ``volume_padding_mode`` (``"empty"`` would leave garbage).
PAD_MODES = (
    "minimum",
    "constant",
    "edge",
    "reflect",
    "symmetric",
    "wrap",
    "maximum",
    "mean",
    "median",
    "linear_ramp",
)


def _as_sizes(value: int | Sequence[int], name: str) -> Shape3:
    """Broadcast an int, or check three ints, that are all >= 0."""
    values = (value,) * 3 if np.isscalar(value) else tuple(value)
    if len(values) != 3:
        raise ValueError(f"{name} needs 3 values (x, y, z) in voxels, got {value!r}")
    if any(not float(v).is_integer() or v < 0 for v in values):
        raise ValueError(f"{name} must be whole numbers >= 0 (voxels), got {value!r}")
    x, y, z = (int(v) for v in values)
    return x, y, z


def pad_widths(
    shape: Sequence[int], padding: int | Sequence[int] = 0, pad_to: int | Sequence[int] = 0
) -> tuple[Shape3, Shape3]:
    """Voxels to add before and after each axis.

    ``padding`` voxels are added on both sides first; then, where ``pad_to`` is
    above 0 and the padded size is still smaller, the difference is split
    evenly (the odd voxel goes after). Axes of size 1 are never padded.

    Args:
        shape: ``(x, y, z)`` size in voxels before padding.
        padding: ``volume_padding_size``, voxels per side along x, y, z.
        pad_to: ``volume_padding_to_size``, minimum size along x, y, z (0 = off).

    Returns:
        ``(before, after)``, each ``(x, y, z)`` in voxels.

    Raises:
        ValueError: a size is negative, fractional, or not 3 values.
    """
    border = _as_sizes(padding, "volume_padding_size")
    target = _as_sizes(pad_to, "volume_padding_to_size")
    before, after = [], []
    for size, pad, want in zip(shape, border, target):
        pad = 0 if size == 1 else pad
        missing = 0 if size == 1 else max(0, want - (size + 2 * pad))
        before.append(pad + missing // 2)
        after.append(pad + missing - missing // 2)
    return (before[0], before[1], before[2]), (after[0], after[1], after[2])


def pad_array(array: np.ndarray, before: Sequence[int], after: Sequence[int], mode: str = "minimum") -> np.ndarray:
    """Pad the spatial axes of a ``(x, y, z, channels)`` array.

    Args:
        array: ``(x, y, z, channels)`` volume.
        before: voxels added before each spatial axis.
        after: voxels added after each spatial axis.
        mode: a :func:`numpy.pad` mode from :data:`PAD_MODES`; ``"constant"`` pads with 0.

    Returns:
        C-contiguous ``(x + before + after, ..., channels)`` array of the same dtype
        (``array`` itself when nothing is padded).

    Raises:
        ValueError: ``mode`` is not one of :data:`PAD_MODES`.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"unknown volume_padding_mode {mode!r}; use one of {', '.join(PAD_MODES)}")
    if not any(before) and not any(after):
        return array
    widths = [(int(b), int(a)) for b, a in zip(before, after)] + [(0, 0)] * (array.ndim - 3)
    return np.ascontiguousarray(np.pad(array, widths, mode=mode))


def crop_array(array: np.ndarray, before: Sequence[int], after: Sequence[int]) -> np.ndarray:
    """Undo :func:`pad_array`: remove ``before`` / ``after`` voxels from each spatial axis.

    Args:
        array: ``(x, y, z, channels)`` padded volume.
        before: voxels to remove at the start of each spatial axis.
        after: voxels to remove at the end of each spatial axis.

    Returns:
        The cropped ``(x, y, z, channels)`` array (a view).

    Raises:
        ValueError: the padding is larger than the array.
    """
    if any(b + a >= n for b, a, n in zip(before, after, array.shape) if b + a):
        raise ValueError(f"cannot crop {tuple(before)} + {tuple(after)} voxels from an array of shape {array.shape}")
    index = tuple(slice(int(b), n - int(a)) for b, a, n in zip(before, after, array.shape))
    return array[index]


def pad_channels(array: np.ndarray, before: Sequence[int], after: Sequence[int],
                 fill: float | Sequence[float] = 0) -> np.ndarray:
    """Pad the spatial axes of a ``(x, y, z, channels)`` array with a constant per channel.

    Args:
        array: ``(x, y, z, channels)`` volume.
        before: voxels added before each spatial axis.
        after: voxels added after each spatial axis.
        fill: the value of the added voxels, one for all channels or one per channel
            (e.g. ``[1, 0, ..., 0]``: class probabilities that are background there).

    Returns:
        A new C-contiguous ``(x + before + after, ..., channels)`` array of ``array``'s dtype.

    Raises:
        ValueError: ``fill`` is neither one value nor one per channel, or a width is negative.
    """
    values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    if values.ndim != 1 or values.size not in (1, array.shape[3]):
        raise ValueError(f"fill needs one value or one per channel ({array.shape[3]}), got {fill!r}")
    if any(int(w) < 0 for w in (*before, *after)):
        raise ValueError(f"cannot pad by negative widths {tuple(before)} + {tuple(after)}")
    shape = tuple(int(n) + int(b) + int(a) for n, b, a in zip(array.shape[:3], before, after))
    out = np.empty(shape + array.shape[3:], dtype=array.dtype)
    out[...] = values.astype(array.dtype)
    out[tuple(slice(int(b), int(b) + n) for b, n in zip(before, array.shape[:3]))] = array
    return out
