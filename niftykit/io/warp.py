"""Resampling through one composed map, evaluated only at the output voxels.

:func:`warp` samples volumes at ``x(y)``, the map of :class:`~niftykit.io.deform.SpatialTransform`
from output voxel ``y`` to input voxel ``x``. The output grid is the whole volume or a training
window ``[lo, hi)`` of it: the map is built on the output grid only, 2^16 voxels at a time (a
64^3 window in four chunks of about 30 numpy calls each, so little of a window holds the GIL),
and only the block of the input that the map reaches (bounded from the map's factors) is read:
copied into a compact table when it is under half the volume (the gathers then stay in cache),
blurred or filtered. Per interpolation order, all channels at once, with ``x`` clipped to
``[0, n - 1]`` per axis outside the volume (scipy's ``mode="nearest"``):

* 0 (labels): voxel ``floor(x + 0.5)``, gathered with ``np.take``, any dtype.
* 1: trilinear (bilinear in 2-D): ``2^rank`` gathers and ``2^rank - 1`` lerps, row numbers summed
  in float32 (exact below 2^24 rows, else float64), gathers with ``mode="wrap"`` on rows in range
  by construction (``"clip"`` made them 1.6x slower). For a 64^3 window this and order 0 take
  about 2 ms and 0.5 ms, against 8 ms and 4 ms for ``scipy.ndimage.map_coordinates``.
* 2-5: ``map_coordinates`` on the spline coefficients (``spline_filter``) of the reached block plus
  a 16-voxel margin: the prefilter's poles (modulus at most 0.43, order 5) leave the margin's
  effect below 2e-6 of the intensity range.

**Anti-aliasing** (:func:`blur`, before shrinking) is applied to that block with a margin of its
kernel radius, which equals blurring the whole volume. Taps below 2^-24 of the centre are dropped
(below float32 resolution), so a zoom of 0.926-1 costs nothing, one of 0.9 a 3-tap pass.

**Memory.** A fresh megabyte array faults its pages in again whenever the allocator has handed
freed memory back to the system, 1-2 us a page on the project's 2-core VM. A :class:`Workspace`
keeps the scratch arrays from call to call, and recycles returned windows once nothing refers to
them any more (:meth:`Workspace.result`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import product

import numpy as np
from numpy.typing import DTypeLike
from scipy import ndimage as ndi

from niftykit.io.deform import SpatialTransform

__all__ = ["Workspace", "blur", "crop", "warp"]

#: output voxels per chunk of the coordinate map.
_CHUNK = 1 << 16
#: output voxels that justify one more thread (below, a window runs on the calling thread).
_VOXELS_PER_THREAD = 1 << 18
_SPLINE_MARGIN = 16
#: byte alignment of :meth:`Workspace.result` arrays (TensorFlow's ``EIGEN_MAX_ALIGN_BYTES``).
_ALIGN = 64
#: references to a kept result's memory when nothing else holds it: the list, the loop, the call.
_UNREFERENCED = 3
#: ``2 ln 2^24``: a Gaussian tap at ``r`` is below 2^-24 of the centre when ``r^2 > this sigma^2``.
_NEGLIGIBLE_TAP = 48.0 * math.log(2.0)


class Workspace:
    """Scratch arrays kept by key and handed out again (see the module docstring), and
    recycled result arrays.

    Not thread-safe: give each thread its own :meth:`lane`.

    Args:
        limit: arrays larger than this many bytes are allocated afresh and not kept.
        results: result arrays kept per size for :meth:`result` to recycle.
    """

    def __init__(self, limit: int = 1 << 23, results: int = 64) -> None:
        self.limit = int(limit)
        self.results = int(results)
        self._buffers: dict[str, np.ndarray] = {}
        self._lanes: dict[str, Workspace] = {}
        self._results: dict[int, list[np.ndarray]] = {}

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

    def result(self, shape: Sequence[int], dtype: DTypeLike) -> np.ndarray:
        """An uninitialised C-contiguous array for the caller to keep, its data 64-byte aligned.

        The memory of an earlier result once nothing refers to it (no array, view or tensor:
        CPython's reference count of its owner), else new; ``results`` of each size up to
        ``limit`` bytes are kept. A window in a ``tf.data`` queue is wrapped without a copy, and
        its memory comes back once the queue lets go, rather than fresh pages to fault in.
        """
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        kept = self._results.setdefault(nbytes, []) if nbytes <= self.limit else []
        for memory in kept:
            if sys.getrefcount(memory) <= _UNREFERENCED:
                break
        else:
            memory = np.empty(nbytes + _ALIGN, np.uint8)
            if len(kept) < self.results:
                kept.append(memory)
        start = -memory.ctypes.data % _ALIGN
        return memory[start : start + nbytes].view(dtype).reshape(shape)

    def lane(self, key: str) -> Workspace:
        """A separate workspace under ``key`` (for one thread, or one source)."""
        return self._lanes.setdefault(key, Workspace(self.limit, self.results))


class _Table:
    """One source as a lookup table over the block ``[origin, origin + shape)`` of its input.

    ``values``: ``(voxels, channels)`` rows in C order of ``shape`` (order 0-1) or ``(*shape,
    channels)`` spline coefficients (2-5); ``out``: the ``(output voxels, channels)`` output. Per
    axis (``(rank, 1)``): ``last`` voxel, ``top`` cell start (``n - 2`` or 0), ``steps`` between
    rows in ``index`` precision (float32 while row numbers are below 2^24); ``corners``: a cell's
    corner row offsets, last axis the lowest bit.
    """

    def __init__(self, values: np.ndarray, origin: Sequence[int], shape: Sequence[int],
                 order: int, out: np.ndarray) -> None:
        self.values, self.order, self.out = values, order, out
        self.shape = tuple(int(n) for n in shape)
        self.origin = np.asarray(origin, np.float32)[:, None]
        size = np.asarray(self.shape, np.float32)[:, None]
        self.last, self.top = size - 1, np.maximum(size - 2, 0)
        self.index = np.float32 if math.prod(self.shape) < 1 << 24 else np.float64
        rows = [math.prod(self.shape[a + 1 :]) for a in range(len(self.shape))]  # C order
        self.steps = np.asarray(rows, self.index)[:, None]
        self.corners = tuple(sum(offset) for offset in product(
            *[(0, stride if n > 1 else 0) for n, stride in zip(self.shape, rows)]))


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
    if sigma is not None:  # axes whose kernel is the single tap 1 are not blurred at all
        sigma = [float(v) if _radius(v) > 0 else 0.0 for v in sigma]
        sigma = sigma if any(sigma) else None
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
    margin += _radius(max(sigma)) if blurred else 0  # the blur kernel's radius
    lo = np.maximum(reach[0] - margin, 0)
    hi = np.minimum(reach[1] + margin + 1, shape)
    usable = volume.flags.c_contiguous and (order == 0 or volume.dtype in (np.float32, np.float64))
    if order <= 1 and not blurred and usable and 2 * math.prod(hi - lo) > math.prod(shape):
        return _Table(volume.reshape(-1, channels), np.zeros(len(shape)), shape, order, out_rows)
    block = volume[tuple(slice(a, b) for a, b in zip(lo, hi))]
    precision = np.float64 if block.dtype == np.float64 else np.float32
    if blurred and channels == 1:  # blurred straight from the volume: no copy first
        values = blur(block[..., 0], sigma, workspace)[..., None]
    else:
        values = workspace.array("table", block.shape, block.dtype if order == 0 else precision)
        values[...] = block
        for c in range(channels if blurred else 0):
            values[..., c] = blur(block[..., c], sigma, workspace)
    for c in range(channels if order > 1 else 0):
        ndi.spline_filter(values[..., c], order=order, output=values[..., c], mode="nearest")
    if order <= 1:
        values = values.reshape(-1, channels)
    return _Table(values, lo, hi - lo, order, out_rows)


def _sample(table: _Table, coords: np.ndarray, rows: slice, scratch: Workspace) -> None:
    """Sample ``table`` at input voxels ``coords`` ``(rank, n)`` into output ``rows``."""
    if table.origin.any():
        local = scratch.array("local", coords.shape, np.float32)
        coords = np.subtract(coords, table.origin, out=local)
    out = table.out[rows]
    if table.order == 0:
        _nearest(table, coords, out, scratch)
    elif table.order == 1:
        _store(_linear(table, coords, scratch), out)
    else:
        values = scratch.array("values", (coords.shape[1],), table.values.dtype)
        for c in range(out.shape[-1]):
            ndi.map_coordinates(table.values[..., c], coords, order=table.order, mode="nearest",
                                prefilter=False, output=values)
            _store(values, out[:, c])


def _rows(table: _Table, cells: np.ndarray, scratch: Workspace) -> np.ndarray:
    """Row numbers (intp) of whole-voxel positions ``cells`` ``(rank, n)`` (overwritten)."""
    np.multiply(cells, table.steps, out=cells)
    total = np.add.reduce(cells, axis=0, out=scratch.array("total", cells.shape[1:], table.index))
    rows = scratch.array("rows", total.shape, np.intp)
    np.copyto(rows, total, casting="unsafe")
    return rows


def _nearest(table: _Table, coords: np.ndarray, out: np.ndarray, scratch: Workspace) -> None:
    """Rows ``floor(x + 0.5)`` of ``table.values`` (clipped into the grid) into ``out``."""
    rounded = scratch.array("position", coords.shape, np.float32)
    np.add(coords, np.float32(0.5), out=rounded)
    np.clip(rounded, 0, table.last, out=rounded)
    cells = np.floor(rounded, out=scratch.array("cells", coords.shape, table.index))
    np.take(table.values, _rows(table, cells, scratch), axis=0, out=out, mode="wrap")


def _linear(table: _Table, coords: np.ndarray, scratch: Workspace) -> np.ndarray:
    """Multilinear interpolation of ``table.values`` rows at ``coords``: a scratch
    ``(n, channels)``. Each axis is clipped to ``[0, n - 1]``; the cell starts at
    ``min(floor(x), n - 2)``, so ``x = n - 1`` takes the last voxel with weight 1."""
    values, count = table.values, coords.shape[1]
    fractions = np.clip(coords, 0, table.last, out=scratch.array("position", coords.shape,
                                                                  np.float32))
    cells = np.floor(fractions, out=scratch.array("cells", coords.shape, table.index))
    np.clip(cells, 0, table.top, out=cells)
    np.subtract(fractions, cells, out=fractions)
    base = _rows(table, cells, scratch)
    corners = scratch.array("corners", (len(table.corners), count, values.shape[1]), values.dtype)
    for k, offset in enumerate(table.corners):
        np.take(values[offset:], base, axis=0, out=corners[k], mode="wrap")
    for level, fraction in enumerate(fractions[::-1, :, None]):  # last axis: the lowest bit
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

    The kernel (truncated at ``int(4 sigma + 0.5)`` voxels, scipy's default, less taps below
    2^-24 of the centre) is applied as a sum of shifted whole planes: scipy filters a line at a
    time, which along the first axes of a C-ordered volume strides through memory (40 ms along x
    for 128^3, against 1-3 ms here). Axes left with one tap (``sigma < 0.1734``) are skipped, and
    the first blurred axis reads ``volume`` itself (any strides, any real dtype).

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
    spare, temp = (workspace.array(f"blur{i}", volume.shape, precision) for i in range(2))
    source = volume
    for axis, s in enumerate(sigma):
        if _radius(s) > 0:
            target = workspace.array("blur2", volume.shape, precision) if source is spare else spare
            _blur_axis(source, float(s), axis, target, temp)
            source = target
    if source is volume:
        spare[...] = volume
        return spare
    return source


def _radius(sigma: float) -> int:
    """Half-width of the truncated Gaussian kernel: scipy's ``int(4 sigma + 0.5)``, less the
    outer taps lighter than 2^-24 of the centre tap (below float32 resolution: only
    ``sigma < 0.1734`` loses its one side tap, which scipy weights at most 6e-8)."""
    sigma = float(sigma)
    radius = int(4.0 * sigma + 0.5)
    while radius > 0 and radius**2 > _NEGLIGIBLE_TAP * sigma**2:
        radius -= 1
    return radius


def _blur_axis(volume: np.ndarray, sigma: float, axis: int, out: np.ndarray,
               temp: np.ndarray) -> None:
    """``gaussian_filter1d(volume, sigma, axis, mode="nearest")`` into ``out``, ``temp`` scratch.

    The kernel is symmetric: inner planes take ``w_k (v[i - k] + v[i + k])`` in three passes per
    tap pair, the ``k`` planes at each end the same with the neighbour index clamped.
    """
    radius = _radius(sigma)
    weights = np.exp(-0.5 * np.arange(radius + 1) ** 2 / sigma**2)
    weights = (weights / (2.0 * weights.sum() - weights[0])).astype(out.dtype)
    source, target, scratch = (np.moveaxis(a, axis, 0) for a in (volume, out, temp))
    n = source.shape[0]
    np.multiply(source, weights[0], out=target, dtype=out.dtype)
    for k in range(1, radius + 1):  # sums in the output's precision: integer inputs never wrap
        if n > 2 * k:
            pairs = np.add(source[2 * k :], source[: n - 2 * k], out=scratch[: n - 2 * k],
                           dtype=out.dtype)
            target[k : n - k] += np.multiply(pairs, weights[k], out=pairs)
        for i in sorted({*range(min(k, n)), *range(max(n - k, 0), n)}):
            pair = np.add(source[max(i - k, 0)], source[min(i + k, n - 1)], out=scratch[0],
                          dtype=out.dtype)
            target[i] += np.multiply(pair, weights[k], out=pair)


def _slabs(size: int, parts: int) -> list[slice]:
    """Split ``range(size)`` into ``parts`` contiguous slices (no empty ones)."""
    parts = min(max(parts, 1), size)
    return [slice(i * size // parts, (i + 1) * size // parts) for i in range(parts)]


def _run(tasks: list[Callable[[], None]], threads: int) -> None:
    """Run ``tasks`` on ``threads`` threads (numpy and scipy.ndimage release the GIL)."""
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()
