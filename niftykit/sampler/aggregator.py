"""Stitching window outputs back into a volume, streaming.

Three ways to combine the outputs of overlapping grid windows (``mode``):

- ``crop``: NiftyNet's ``GridSamplesAggregator`` (``engine/windows_aggregator_grid.py``):
  each window's centre, the window minus ``border`` on every side, is written;
  where windows overlap the later one wins.
- ``mean``: the average of all overlapping outputs, after cropping ``border``
  (TorchIO's ``GridAggregator(overlap_mode="average")``, MONAI's ``mode="constant"``).
- ``gaussian``: the average weighted by a Gaussian importance map over the
  window, sigma = window / 8 per axis, as nnU-Net (Isensee et al., Nature
  Methods 18, 2021; ``sliding_window_prediction.compute_gaussian``) and MONAI
  (``sliding_window_inference(mode="gaussian", sigma_scale=0.125)``); weights
  are clamped to at least 1e-3 of the centre weight, as MONAI does.

Two outputs (``output``):

- ``probabilities``: the float ``(x, y, z, C)`` volume, which a probability
  map needs. Memory: ``X*Y*Z*C*4`` bytes, plus ``X*Y*Z*4`` for the weights of
  ``mean`` / ``gaussian`` (one per voxel, not per channel). Windows may come in
  any order.
- ``labels``: the argmax ``(x, y, z)`` in the smallest integer dtype holding
  ``C - 1``. Float accumulators are kept only for the slab of x still being
  written (the remedy for MONAI's whole-volume buffers, MONAI#6427): windows
  come in the sampler's raster order, x starts increasing, so when a window
  starting at x0 arrives every voxel below ``x0 + border_x`` is final, is
  argmaxed into the label volume and leaves the slab. Memory:
  ``X*Y*Z*itemsize + D*Y*Z*C*4`` bytes with ``D = min(window_x - 2*border_x, X)``;
  the weights are not needed (the argmax of a weighted sum equals the argmax of
  the weighted mean). For a 512 x 512 x 200 CT, C = 9, 96^3 windows, border 0:
  52 MB of labels + 354 MB of slab, against 1.9 GB for the probabilities.

The caller holds one batch of outputs at a time; no list of windows is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from niftykit.sampler.grid import GridSampler

__all__ = ["MODES", "OUTPUTS", "GridAggregator", "gaussian_importance_map", "label_dtype"]

MODES = ("crop", "mean", "gaussian")
OUTPUTS = ("probabilities", "labels")
Slices = tuple[slice, ...]


def _ints(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def gaussian_importance_map(
    window_size: Sequence[int], sigma_scale: float = 0.125, min_weight: float = 1e-3
) -> np.ndarray:
    """A separable Gaussian weight over a window, 1 at the centre.

    As nnU-Net's ``compute_gaussian`` (sigma = tile / 8) and MONAI's
    ``compute_importance_map(mode="gaussian")``, but centred exactly, at
    ``(n - 1) / 2``, so that the map is symmetric for even sizes too. An axis of
    size 1 or 2 is flat (2-D windows get a flat weight along z).

    Args:
        window_size: ``(wx, wy, wz)`` in voxels.
        sigma_scale: sigma as a fraction of the window size, per axis.
        min_weight: weights are clamped to at least this, so that a voxel seen
            only by window edges still has a defined average.

    Returns:
        ``(wx, wy, wz)`` float32 weights in ``[min_weight, 1]``.
    """
    weights = np.ones((1, 1, 1))
    for axis, size in enumerate(int(n) for n in window_size):
        distance = np.arange(size) - (size - 1) / 2.0
        profile = np.exp(-(distance**2) / (2.0 * (sigma_scale * size) ** 2))
        weights = weights * (profile / profile.max()).reshape([-1 if a == axis else 1 for a in range(3)])
    return np.maximum(weights, min_weight).astype(np.float32)


def label_dtype(num_channels: int) -> np.dtype:
    """The smallest unsigned integer dtype that holds the labels ``0 .. num_channels - 1``."""
    return np.min_scalar_type(max(int(num_channels) - 1, 0))


class GridAggregator:
    """Combine network outputs for a :class:`GridSampler`'s windows into one volume.

    Args:
        sampler: the sampler whose windows are being processed.
        num_channels: channels ``C`` of the network output.
        mode: ``"crop"`` (NiftyNet, later window wins), ``"mean"`` or
            ``"gaussian"`` (see the module docstring).
        output: ``"probabilities"`` for the ``(x, y, z, C)`` volume, or
            ``"labels"`` for its streamed argmax ``(x, y, z)``.
        fill_constant: value of voxels no window has written (``crop``), or
            that no window covered (``mean`` / ``gaussian``).
        dtype: dtype of the probabilities volume (``mean`` and ``gaussian``
            accumulate in float32 and cast at the end); unused for labels.

    Attributes:
        peak_nbytes: the most bytes the aggregator's arrays (accumulators,
            weights, labels, importance map) have held at once.

    Raises:
        ValueError: an unknown mode or output, or ``num_channels < 1``.
    """

    def __init__(
        self,
        sampler: GridSampler,
        num_channels: int,
        *,
        mode: str = "crop",
        output: str = "probabilities",
        fill_constant: float = 0.0,
        dtype: DTypeLike = np.float32,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"aggregation mode must be one of {MODES}, got {mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"aggregator output must be one of {OUTPUTS}, got {output!r}")
        if int(num_channels) < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels}")
        self.sampler, self.num_channels, self.mode, self.output = sampler, int(num_channels), mode, output
        self._shape = tuple(int(s) for s in sampler.original_shape)
        self._fill, self._dtype = fill_constant, np.dtype(dtype)
        self._importance = gaussian_importance_map(sampler.window_size) if mode == "gaussian" else None
        self._weights: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        channels = (self.num_channels,)
        if output == "labels":
            depth = min(int(sampler.window_size[0] - 2 * sampler.border[0]), self._shape[0])
            self._acc = np.zeros((depth,) + self._shape[1:] + channels, np.float32)
            self._labels = np.zeros(self._shape, label_dtype(self.num_channels))
        elif mode == "crop":
            self._acc = np.full(self._shape + channels, fill_constant, dtype=dtype)
        else:
            self._acc = np.zeros(self._shape + channels, np.float32)
            self._weights = np.zeros(self._shape, np.float32)
        self._origin = 0  # x of the accumulator's first row (moves in labels mode)
        self._x_start: int | None = None
        self._added = 0
        self._result: np.ndarray | None = None
        self.peak_nbytes = self.nbytes

    @property
    def nbytes(self) -> int:
        """Bytes held now by the aggregator's arrays."""
        arrays = (self._acc, self._weights, self._labels, self._importance)
        return sum(a.nbytes for a in arrays if a is not None)

    def add(self, outputs: np.ndarray, locations: np.ndarray) -> None:
        """Add a batch of outputs.

        Args:
            outputs: ``(B, ox, oy, oz, C)`` network outputs (``(B, ox, oy, oz)``
                when ``C`` is 1), each centred in its window; ``ox`` may be
                smaller than the window (valid convolutions).
            locations: ``(B, 6)`` the windows' locations from the sampler.

        Raises:
            ValueError: shapes disagree, an output does not cover its window
                minus the border (the message gives the border needed), a
                location is not a window of the sampler, or (labels output)
                windows come out of the sampler's x order.
            RuntimeError: :meth:`result` has already been taken.
        """
        if self._result is not None:
            raise RuntimeError("result() has been taken; make a new GridAggregator for another volume")
        outputs, locations = np.asarray(outputs), np.asarray(locations)
        if outputs.ndim == 4 and self.num_channels == 1:
            outputs = outputs[..., np.newaxis]
        if outputs.ndim != 5 or outputs.shape[-1] != self.num_channels:
            raise ValueError(f"outputs must be (B, x, y, z, {self.num_channels}), got {outputs.shape}")
        if locations.ndim != 2 or locations.shape != (len(outputs), 6):
            raise ValueError(f"locations must be ({len(outputs)}, 6), got {locations.shape}")
        for output, location in zip(outputs, locations.astype(np.int64)):
            self._write(output, location)
            self._added += 1
        self.peak_nbytes = max(self.peak_nbytes, self.nbytes)

    def _regions(self, size: np.ndarray, location: np.ndarray) -> tuple[Slices, Slices, Slices]:
        """Slices of the output, the volume and the window for the written part of one window."""
        border, start = self.sampler.border, location[:3]
        window = location[3:] - start
        if tuple(window) != tuple(self.sampler.window_size):
            raise ValueError(f"location {_ints(location)} is not a {self.sampler.window_size} window of this sampler")
        offset = (window - size) // 2
        if np.any(offset > border) or np.any(offset + size < window - border):
            needed = np.maximum(offset, window - offset - size)
            raise ValueError(
                f"network output {_ints(size)} does not cover window {_ints(window)} minus border "
                f"{_ints(border)} on each side; set the inference border to at least {_ints(needed)}"
            )
        lo = np.maximum(start + border, 0)
        hi = np.maximum(np.minimum(start + window - border, self._shape), lo)
        dst = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        win = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
        src = tuple(slice(w.start - int(o), w.stop - int(o)) for w, o in zip(win, offset))
        return src, dst, win

    def _write(self, output: np.ndarray, location: np.ndarray) -> None:
        src, dst, win = self._regions(np.array(output.shape[:3]), location)
        if self._labels is not None:
            self._advance(int(location[0]))
        rows = slice(dst[0].start - self._origin, dst[0].stop - self._origin)
        if rows.stop > len(self._acc):
            raise ValueError(f"location {_ints(location)} writes past the slab being aggregated; "
                             "pass the sampler's own locations, in order")
        target, values = self._acc[(rows,) + dst[1:]], output[src]
        if self.mode == "crop":
            target[...] = values
            return
        if self._importance is None:
            target += values
            weight: np.ndarray | float = 1.0
        else:
            weight = self._importance[win]
            target += values * weight[..., np.newaxis]
        if self._weights is not None:
            self._weights[dst] += weight

    def _advance(self, x_start: int) -> None:
        """Finalise every voxel that no window from ``x_start`` on writes (labels output)."""
        if self._x_start is not None and x_start < self._x_start:
            raise ValueError(
                f"labels output needs the windows in the sampler's raster order (x starts increasing): "
                f"got a window starting at x={x_start} after one at x={self._x_start}"
            )
        self._x_start = x_start
        self._finalise(min(max(x_start + int(self.sampler.border[0]), 0), self._shape[0]))

    def _finalise(self, upto: int) -> None:
        """Argmax slab rows for x in ``[origin, upto)`` into the labels and roll the slab on."""
        count = upto - self._origin
        if count <= 0 or self._labels is None:
            return
        depth = len(self._acc)
        for row in range(min(count, depth)):
            self._labels[self._origin + row] = self._acc[row].argmax(axis=-1)
        keep = max(depth - count, 0)
        for first in range(0, keep, count):  # chunks of <= count rows never overlap their source
            rows = min(count, keep - first)
            self._acc[first:first + rows] = self._acc[first + count:first + count + rows]
        self._acc[keep:] = 0.0
        self._origin = upto

    def result(self) -> np.ndarray:
        """The aggregated volume on the original volume's grid.

        Returns:
            ``(x, y, z, C)`` probabilities of ``dtype``, or ``(x, y, z)`` labels of
            :func:`label_dtype`; the same array on every call.

        Raises:
            RuntimeError: not every window of the sampler has been added.
        """
        if self._added < len(self.sampler.locations):
            raise RuntimeError(f"only {self._added} of {len(self.sampler.locations)} windows have been added")
        if self._result is None:
            self._result = self._finish()
        return self._result

    def _finish(self) -> np.ndarray:
        if self._labels is not None:
            self._finalise(self._shape[0])
            self._acc = self._acc[:0].copy()  # release the slab
            return self._labels
        if self._weights is not None:
            empty = self._weights == 0
            self._weights[empty] = 1.0
            np.divide(self._acc, self._weights[..., np.newaxis], out=self._acc)
            self._acc[empty] = self._fill
            self._weights = None
        return self._acc if self._acc.dtype == self._dtype else self._acc.astype(self._dtype)
