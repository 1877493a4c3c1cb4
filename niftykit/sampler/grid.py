"""Sliding-window sampling for inference (NiftyNet's ``GridSampler``).

The volume is padded by ``border`` on every side, and up to the window size
where still smaller, so that every original voxel falls in the central,
un-bordered part of some window. Windows step by ``window - 2 * border``
from 0, plus one last window flush with the padded end.

``overlap`` adds MONAI-style overlapping windows (``sliding_window_inference(
overlap=...)``) for the blending aggregators: the step becomes
``max(1, round((window - 2 * border) * (1 - overlap)))``, which is
``window * (1 - overlap)`` without a border and NiftyNet's step at overlap 0.
Locations are in raster order: x-major, x starts increasing, so that the
streaming aggregator can finalise every slab of x behind the current window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from niftykit.sampler.window import resolve_window

__all__ = ["GridSampler"]

PAD_MODES = ("minimum", "constant", "edge", "reflect", "symmetric", "mean", "maximum")


def _border3(border: Sequence[int]) -> np.ndarray:
    values = [int(b) for b in border]
    if len(values) == 2:
        values.append(0)
    if len(values) != 3 or min(values) < 0:
        raise ValueError(f"border must be three non-negative voxel counts (x, y, z), got {tuple(border)}")
    return np.array(values)


def _overlap3(overlap: float | Sequence[float]) -> np.ndarray:
    try:
        values = [float(overlap)] * 3 if np.isscalar(overlap) else [float(o) for o in overlap]  # type: ignore
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or not all(0.0 <= o < 1.0 for o in values):
        raise ValueError(f"overlap must be a fraction in [0, 1), or three of them (x, y, z), got {overlap!r}")
    return np.array(values)


def _starts(padded: int, window: int, step: int) -> list[int]:
    starts = list(range(0, padded - window + 1, step))
    if starts[-1] != padded - window:
        starts.append(padded - window)
    return starts


class GridSampler:
    """Cover a volume with overlapping windows for inference.

    Args:
        volume: ``(x, y, z, c)`` image.
        window_size: ``(x, y, z)`` window size in voxels; <= 0 along an axis
            means the whole bordered extent (volume + 2 * border).
        border: ``(x, y, z)`` voxels at each window edge whose outputs are
            discarded by :class:`~niftykit.sampler.GridAggregator`.
        pad_mode: :func:`numpy.pad` mode for the padding (NiftyNet's
            ``volume_padding_mode``); one of :data:`PAD_MODES`.
        overlap: fraction in [0, 1) of the un-bordered window shared by
            neighbouring windows, one for all axes or ``(x, y, z)``; the step is
            ``max(1, round((window - 2 * border) * (1 - overlap)))`` (MONAI's
            ``overlap``; 0.5 is nnU-Net's tile step). Use with the ``mean`` or
            ``gaussian`` aggregator; in ``crop`` mode the later window wins.

    Attributes:
        window_size: resolved ``(wx, wy, wz)``.
        border: ``(3,)`` border in voxels.
        step: ``(3,)`` step between window starts in voxels (the last window
            may step less, to end flush with the padded volume).
        original_shape: ``(x, y, z)`` of the input volume.
        pad_before: ``(3,)`` voxels of padding before the volume on each axis.
        padded_shape: ``(x, y, z)`` of the padded volume.
        locations: ``(N, 6)`` int32 ``[x0, y0, z0, x1, y1, z1]`` per window,
            in the original volume's voxels (negative / past the end in the padding).

    Raises:
        ValueError: ``window - 2 * border <= 0`` along an axis, or a bad
            volume shape, pad mode or overlap.
    """

    def __init__(
        self,
        volume: np.ndarray,
        window_size: Sequence[int],
        border: Sequence[int],
        pad_mode: str = "minimum",
        *,
        overlap: float | Sequence[float] = 0.0,
    ) -> None:
        if volume.ndim != 4:
            raise ValueError(f"GridSampler needs an (x, y, z, channels) volume, got shape {volume.shape}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        shape = np.array(volume.shape[:3])
        self.border = _border3(border)
        self.window_size = resolve_window(window_size, shape + 2 * self.border)
        window = np.array(self.window_size)
        inner = window - 2 * self.border
        if np.any(inner <= 0):
            raise ValueError(
                f"window size {self.window_size} leaves nothing inside border {tuple(int(b) for b in self.border)}: "
                "each window size must exceed twice the border"
            )
        self.step = np.maximum(1, np.floor(inner * (1.0 - _overlap3(overlap)) + 0.5)).astype(int)
        extra = np.maximum(window - shape - 2 * self.border, 0)
        self.pad_before = self.border + extra // 2
        pad_after = self.border + extra - extra // 2
        self.original_shape = tuple(int(s) for s in shape)
        self.padded_shape = tuple(int(s) for s in shape + self.pad_before + pad_after)
        pads = [(int(b), int(a)) for b, a in zip(self.pad_before, pad_after)] + [(0, 0)]
        volume = volume.astype(np.float32, copy=False)
        # no copy of a large volume when nothing needs padding (the common case, border 0)
        self._padded = (volume if not any(b or a for b, a in pads)
                        else np.pad(volume, pads, mode=pad_mode))
        axes = [_starts(p, w, s) for p, w, s in zip(self.padded_shape, window, self.step)]
        starts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3) - self.pad_before
        self.locations = np.concatenate([starts, starts + window], axis=1).astype(np.int32)

    def __len__(self) -> int:
        return len(self.locations)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield windows in batches, in location order.

        Args:
            batch_size: windows per batch; the last batch may be smaller.

        Yields:
            ``(B, wx, wy, wz, c)`` float32 windows and their ``(B, 6)`` locations.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for first in range(0, len(self.locations), batch_size):
            locations = self.locations[first:first + batch_size]
            yield np.stack([self._window(loc) for loc in locations]), locations

    def _window(self, location: np.ndarray) -> np.ndarray:
        start = location[:3] + self.pad_before
        return self._padded[tuple(slice(int(s), int(s + w)) for s, w in zip(start, self.window_size))]
