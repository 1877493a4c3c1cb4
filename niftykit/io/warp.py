"""Resampling through one composed map, evaluated only at the output voxels.

:func:`warp` samples volumes at ``x(y)``, the map of :class:`~niftykit.io.deform.SpatialTransform`
from output voxel ``y`` to input voxel ``x``. The output grid is the whole volume or a training
window ``[lo, hi)`` of it (a 64^3 window of a 256x256x128 volume): the map is built on the output
grid only, a chunk of about 2^15 voxels at a time, and only the block of the input that the map
reaches (bounded from the map's factors) is read: copied into a compact table when it is under half
the volume (the gathers then stay in cache: 2 ms less per 64^3 window), blurred or filtered. Per
interpolation order, all channels at once, with ``x`` clipped to ``[0, n - 1]`` per axis outside
the volume (scipy's ``mode="nearest"``):

* 0 (labels): voxel ``floor(x + 0.5)``, gathered with ``np.take``, any dtype.
* 1: trilinear (bilinear in 2-D): ``2^rank`` gathers and ``2^rank - 1`` lerps. For a 64^3 window
  this and order 0 take about 2.5 ms and 1 ms, against 8 ms and 4 ms for
  ``scipy.ndimage.map_coordinates``, whose generic spline loop dominates at this size.
* 2-5: ``map_coordinates`` on the spline coefficients (``spline_filter``) of the reached block plus
  a 16-voxel margin: the prefilter's poles (modulus at most 0.43, order 5) leave the margin's
  effect below 2e-6 of the intensity range.

**Anti-aliasing** (:func:`blur`, before shrinking) is applied to that block with a margin of its
kernel radius, which equals blurring the whole volume: the kernel is truncated at that radius.

**Scratch memory.** A fresh megabyte array faults its pages in again whenever the allocator has
handed freed memory back to the system, 1-2 us a page on the project's 2-core VM: 10 ms of a first
16 ms per window. A :class:`Workspace` keeps the scratch arrays (chunk buffers, blurred blocks)
from call to call, so only the returned windows are new memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise, product

import numpy as np
from numpy.typing import DTypeLike
from scipy import ndimage as ndi

from niftykit.io.deform import SpatialTransform

__all__ = ["Workspace", "blur", "crop", "warp"]

#: output voxels per chunk of the coordinate map.
_CHUNK = 1 << 15
#: output voxels that justify one more thread (below, a window runs on the calling thread).
_VOXELS_PER_THREAD = 1 << 18
_SPLINE_MARGIN = 16


class Workspace:
    """Scratch arrays kept by key and handed out again (see the module docstring).

    Not thread-safe: give each thread its own :meth:`lane`.

    Args:
        limit: arrays larger than this many bytes are allocated afresh and not kept.
    """

    def __init__(self, limit: int = 1 << 23) -> None:
        self.limit = int(limit)
        self._buffers: dict[str, np.ndarray] = {}
        self._lanes: dict[str, Workspace] = {}

    def array(self, key: str, shape: Sequence[int], dtype: DTypeLike) -> np.ndarray:
        """An uninitialised C-contiguous array; the same memory as the last one under ``key``."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > self.limit:
            return np.empty(shape, dtype)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.nbytes < nbytes:
            buffer = self._buffers[key] = np.empty(-(-nbytes // 8), np.float64).view(np.uint8)
        return buffer[:nbytes].view(dtype).reshape(shape)

    def lane(self, key: str) -> Workspace:
        """A separate workspace under ``key`` (for one thread, or one source)."""
        return self._lanes.setdefault(key, Workspace(self.limit))


@dataclass(frozen=True)
class _Table:
    """One source as a lookup table over the block ``[origin, origin + shape)`` of its input.

    ``values`` is ``(voxels, channels)`` for order 0-1 (rows in C order of ``shape``) or
    ``(*shape, channels)`` spline coefficients for order 2-5; ``out`` is the ``(output voxels,
    channels)`` view of the caller's output.
    """

    values: np.ndarray
    origin: np.ndarray
    shape: tuple[int, ...]
    order: int
    out: np.ndarray


def crop(volume: np.ndarray, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    """``volume[lo:hi]`` along the leading ``len(lo)`` axes, edge voxels repeated outside.

    Args:
        volume: ``(x, y, z, ...)`` array.
        lo: first voxel of the box per axis (may be negative).
        hi: one past the last voxel per axis (may exceed the volume), ``hi > lo``.

    Returns:
        A new C-contiguous ``(*(hi - lo), ...)`` array of ``volume``'s dtype.
    """
    shape = volume.shape[: len(lo)]
    if all(0 <= a < b <= n for a, b, n in zip(lo, hi, shape)):
        return np.array(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], order="C", copy=True)
    index = [np.clip(np.arange(a, b), 0, n - 1) for a, b, n in zip(lo, hi, shape)]
    return np.ascontiguousarray(volume[np.ix_(*index)])


def warp(sources: Sequence[tuple[np.ndarray, int, np.ndarray]], transform: SpatialTransform,
         threads: int = 1, sigma: Sequence[float] | None = None,
         workspace: Workspace | None = None) -> None:
    """Resample volumes through one transform, each once, with its own order.

    Args:
        sources: ``(volume, order, out)`` triples: a ``(x, y[, z], channels)`` input, spline order
            0-5 and a C-contiguous ``(x', y'[, z'], channels)`` output (any grid size), written in
            place with its dtype kept (integers rounded and clipped for order > 0). The inputs
            share one spatial shape, the outputs another.
        transform: the map from output to input voxels, ``rank == volume.ndim - 1``.
        threads: at most this many threads, one per 2^18 output voxels (a 64^3 window stays on
            the calling thread).
        sigma: per-axis Gaussian pre-blur in input voxels of sources with order > 0
            (anti-aliasing), or ``None``.
        workspace: scratch memory to reuse between calls (default: fresh arrays).

    Raises:
        ValueError: an output is not C-contiguous.
    """
    workspace = Workspace() if workspace is None else workspace
    out_shape = sources[0][2].shape[:-1]
    basis_x, tensor = transform.factors(out_shape)
    flat = tensor.reshape(*tensor.shape[:2], -1)
    reach = _reach(basis_x, flat, sources[0][0].shape[:-1])
    sigma = None if sigma is None or not np.any(np.asarray(sigma) > 0) else sigma
    tables = [_table(volume, order, out, reach, sigma, workspace.lane(f"source{i}"))
              for i, (volume, order, out) in enumerate(sources)]
    plane = flat.shape[-1]
    chunks = _slabs(out_shape[0], math.ceil(out_shape[0] * plane / _CHUNK))
    workers = max(1, min(threads, out_shape[0] * plane // _VOXELS_PER_THREAD, len(chunks)))

    def task(parts: Sequence[slice], scratch: Workspace) -> None:
        for part in parts:
            coords = scratch.array("coords", (len(out_shape), part.stop - part.start, plane),
                                   np.float32)
            np.einsum(basis_x[part], [1, 2], flat, [0, 2, 3], [0, 1, 3], out=coords)
            rows = slice(part.start * plane, part.stop * plane)
            for table in tables:
                _sample(table, coords.reshape(len(out_shape), -1), rows, scratch)

    groups = [(chunks[s], workspace.lane(f"task{i}"))
              for i, s in enumerate(_slabs(len(chunks), workers))]
    _run([lambda g=group: task(*g) for group in groups], workers)


def _reach(basis_x: np.ndarray, flat: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``(2, rank)`` first and last input voxel the map reaches, clipped into the volume.

    Coordinate ``a`` is ``sum_p w_p flat[a, p] + y_x flat[a, -1]`` with weights ``w_p >= 0``
    summing to one, so the extremes of ``flat[a, :-1]`` plus those of the x term bound it.
    """
    x_term = flat[:, -1, 0] * basis_x[-1, -1]
    low = flat[:, :-1].min(axis=(1, 2)) + np.minimum(x_term, 0.0)
    high = flat[:, :-1].max(axis=(1, 2)) + np.maximum(x_term, 0.0)
    size = np.asarray(shape) - 1
    return np.stack([np.clip(np.floor(low), 0, size), np.clip(np.ceil(high), 0, size)]).astype(int)


def _table(volume: np.ndarray, order: int, out: np.ndarray, reach: np.ndarray,
           sigma: Sequence[float] | None, workspace: Workspace) -> _Table:
    """The lookup table of one source: the volume itself, or a prepared copy of its block."""
    if not out.flags.c_contiguous:
        raise ValueError("warp: outputs must be C-contiguous")
    channels, shape = volume.shape[-1], volume.shape[:-1]
    out_rows = out.reshape(-1, channels)
    blurred = sigma is not None and order > 0
    margin = 1 + (_SPLINE_MARGIN if order > 1 else 0)
    margin += int(4.0 * max(sigma) + 0.5) if blurred else 0  # the blur kernel's radius
    lo = np.maximum(reach[0] - margin, 0)
    hi = np.minimum(reach[1] + margin + 1, shape)
    usable = volume.flags.c_contiguous and (order == 0 or volume.dtype in (np.float32, np.float64))
    if order <= 1 and not blurred and usable and 2 * math.prod(hi - lo) > math.prod(shape):
        return _Table(volume.reshape(-1, channels), np.zeros(len(shape)), shape, order, out_rows)
    block = volume[tuple(slice(a, b) for a, b in zip(lo, hi))]
    precision = np.float64 if block.dtype == np.float64 else np.float32
    values = workspace.array("table", block.shape, block.dtype if order == 0 else precision)
    values[...] = block
    for c in range(channels if blurred or order > 1 else 0):
        if blurred:
            values[..., c] = blur(values[..., c], sigma, workspace)
        if order > 1:
            ndi.spline_filter(values[..., c], order=order, output=values[..., c], mode="nearest")
    if order <= 1:
        values = values.reshape(-1, channels)
    return _Table(values, lo.astype(np.float32), tuple(int(n) for n in hi - lo), order, out_rows)


def _sample(table: _Table, coords: np.ndarray, rows: slice, scratch: Workspace) -> None:
    """Sample ``table`` at input voxels ``coords`` ``(rank, n)`` into output ``rows``."""
    if table.origin.any():
        local = scratch.array("local", coords.shape, np.float32)
        coords = np.subtract(coords, table.origin[:, None], out=local)
    out = table.out[rows]
    if table.order == 0:
        _nearest(table.values, table.shape, coords, out, scratch)
    elif table.order == 1:
        _store(_linear(table.values, table.shape, coords, scratch), out)
    else:
        values = scratch.array("values", (coords.shape[1],), table.values.dtype)
        for c in range(out.shape[-1]):
            ndi.map_coordinates(table.values[..., c], coords, order=table.order, mode="nearest",
                                prefilter=False, output=values)
            _store(values, out[:, c])


def _row_strides(shape: Sequence[int]) -> list[int]:
    """Rows between neighbours along each axis of a C-ordered grid of ``shape``."""
    return [math.prod(shape[a + 1 :]) for a in range(len(shape))]


def _nearest(values: np.ndarray, shape: Sequence[int], coords: np.ndarray, out: np.ndarray,
             scratch: Workspace) -> None:
    """Rows ``floor(x + 0.5)`` of ``values`` (clipped into the grid) into ``out``."""
    count = coords.shape[1]
    index = scratch.array("index", (count,), np.intp)
    step = scratch.array("step", (count,), np.intp)
    rounded = scratch.array("rounded", (count,), np.float32)
    index[...] = 0
    for axis, (size, stride) in enumerate(zip(shape, _row_strides(shape))):
        np.add(coords[axis], np.float32(0.5), out=rounded)
        np.clip(rounded, 0, size - 1, out=rounded)
        np.copyto(step, rounded, casting="unsafe")  # truncation is floor: rounded >= 0
        step *= stride
        index += step
    np.take(values, index, axis=0, out=out, mode="clip")


def _linear(values: np.ndarray, shape: Sequence[int], coords: np.ndarray,
            scratch: Workspace) -> np.ndarray:
    """Multilinear interpolation of ``values`` rows at ``coords``: a scratch ``(n, channels)``."""
    count, rank = coords.shape[1], len(shape)
    base, step = scratch.array("base", (count,), np.intp), scratch.array("step", (count,), np.intp)
    floor = scratch.array("floor", (count,), values.dtype)
    fractions = scratch.array("fractions", (rank, count, 1), values.dtype)
    base[...] = 0
    for axis, (size, stride) in enumerate(zip(shape, _row_strides(shape))):
        position = fractions[axis, :, 0]
        np.clip(coords[axis], 0, size - 1, out=position)
        np.minimum(np.floor(position, out=floor), max(size - 2, 0), out=floor)
        position -= floor
        np.copyto(step, floor, casting="unsafe")
        step *= stride
        base += step
    strides = [stride if size > 1 else 0 for size, stride in zip(shape, _row_strides(shape))]
    corners = scratch.array("corners", (2**rank, count, values.shape[1]), values.dtype)
    for k, offset in enumerate(product(*[(0, s) for s in strides])):
        np.take(values[sum(offset):], base, axis=0, out=corners[k], mode="clip")
    for level, fraction in enumerate(fractions[::-1]):  # last axis first: its bit is the lowest
        low, high = corners[:: 2 << level], corners[1 << level :: 2 << level]
        high -= low
        high *= fraction
        low += high
    return corners[0]


def _store(values: np.ndarray, out: np.ndarray) -> None:
    """Write float ``values`` (a scratch array) into ``out``, rounded and clipped for integers."""
    if out.dtype.kind in "iub":
        info = np.iinfo(out.dtype) if out.dtype.kind != "b" else np.iinfo(np.uint8)
        np.clip(np.rint(values, out=values), info.min, info.max, out=values)
    out[...] = values


def blur(volume: np.ndarray, sigma: Sequence[float], workspace: Workspace | None = None
         ) -> np.ndarray:
    """Separable Gaussian blur with edge-replicating borders (``gaussian_filter``, mode nearest).

    The kernel (truncated at ``int(4 sigma + 0.5)`` voxels, scipy's default) is applied as a sum
    of shifted whole planes: scipy filters a line at a time, which along the first axes of a
    C-ordered volume strides through memory (40 ms along x for 128^3, against 1-3 ms here).

    Args:
        volume: ``(x, y[, z])`` array.
        sigma: per-axis standard deviation in voxels; 0 skips the axis.
        workspace: scratch memory; the result is then one of its arrays, valid until the next
            blur in the same workspace.

    Returns:
        The blurred volume (float64 stays float64, anything else becomes float32).
    """
    workspace = Workspace(limit=0) if workspace is None else workspace
    precision = np.float64 if volume.dtype == np.float64 else np.float32
    out, spare, temp = (workspace.array(f"blur{i}", volume.shape, precision) for i in range(3))
    out[...] = volume
    for axis, s in enumerate(sigma):
        if s > 0:
            _blur_axis(out, float(s), axis, spare, temp)
            out, spare = spare, out
    return out


def _blur_axis(volume: np.ndarray, sigma: float, axis: int, out: np.ndarray,
               temp: np.ndarray) -> None:
    """``gaussian_filter1d(volume, sigma, axis, mode="nearest")`` into ``out``, ``temp`` scratch."""
    radius = int(4.0 * sigma + 0.5)
    weights = np.exp(-0.5 * np.arange(-radius, radius + 1) ** 2 / sigma**2)
    weights = (weights / weights.sum()).astype(volume.dtype)
    source, target, scratch = (np.moveaxis(a, axis, 0) for a in (volume, out, temp))
    np.multiply(source, weights[radius], out=target)
    n = source.shape[0]
    for k in range(1, radius + 1):
        ahead, behind, inside = weights[radius + k], weights[radius - k], max(n - k, 0)
        if inside:
            target[:inside] += np.multiply(source[k:], ahead, out=scratch[:inside])
            target[k:] += np.multiply(source[:inside], behind, out=scratch[:inside])
        target[inside:] += ahead * source[-1]
        target[: n - inside] += behind * source[0]


def _slabs(size: int, parts: int) -> list[slice]:
    """Split ``range(size)`` into ``parts`` contiguous slices (no empty ones)."""
    edges = np.linspace(0, size, min(max(parts, 1), size) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in pairwise(edges)]


def _run(tasks: list[Callable[[], None]], threads: int) -> None:
    """Run ``tasks`` on ``threads`` threads (numpy and scipy.ndimage release the GIL)."""
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
