"""Multi-scale windows: several context sizes around one centre, zoomed to one shape, as channels.

The network window (the finest scale) and coarser windows around the same centre -
e.g. 32³, 64³ and 128³ voxels - are each shrunk to the window's shape by area
averaging and stacked as channels (scale-major: every channel of the first listed
size, then the next). This is the multi-crop input of Shen et al. (multi-crop CNN,
Pattern Recognition 61, 2017; multi-scale CNN, IPMI 2015) and the multi-scale
patches of Moeskops et al. (IEEE TMI 35(5), 2016), fed as channels of one network
instead of to parallel pathways.

Area averaging (:func:`area_resize`) is the anti-aliasing filter for shrinking: an
output voxel is the mean of the input it covers, so a 64³ context shrunk to 32³ is
exactly its 2 × 2 × 2 block means. Every size must be at least the window along
each axis and differ from it by an even number of voxels, so that all scales share
one centre. Label-like volumes (not in ``context``) are cut at the window only.
Voxels outside the volume are zeros, in training and in :class:`MultiScaleGridSampler`.
Sizes are voxels of the preprocessed grid (millimetres with ``pixdim: [1, 1, 1]``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence

import numpy as np

from niftykit.sampler.grid import GridSampler
from niftykit.sampler.multiview import CentredSampler
from niftykit.sampler.window import LOCATION_KEY, WindowSampler, cut_window, resolve_window

__all__ = ["MultiScaleGridSampler", "MultiScaleSampler", "area_resize", "check_scales", "stack_scales"]


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: output cell ``j`` averages input ``[j·f, (j+1)·f)``, ``f = n_in / n_out``."""
    f = n_in / n_out
    j, i = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    overlap = np.minimum(i + 1, (j + 1) * f) - np.maximum(i, j * f)
    return np.clip(overlap, 0.0, None) / f


def area_resize(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize ``(x, y, z, c)`` to ``(X, Y, Z, c)`` by area averaging (box filter; integer
    factors give exact block means, enlarging repeats voxels).

    Returns:
        float32 for integer or float32 input (float64 stays float64); a copy.
    """
    if array.ndim != 4 or len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"area_resize needs an (x, y, z, c) array and an (x, y, z) shape, got {array.shape}, {shape}")
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    out = array.astype(dtype, copy=True)
    for axis, size in enumerate(int(s) for s in shape):
        if out.shape[axis] != size:
            weights = _area_weights(out.shape[axis], size).astype(dtype)
            out = np.moveaxis(np.tensordot(weights, out, axes=(1, axis)), 0, axis)
    return np.ascontiguousarray(out, dtype=dtype)


def check_scales(window: Sequence[int], sizes: Sequence[Sequence[int]]) -> tuple[tuple[int, int, int], ...]:
    """The context sizes as ``(x, y, z)`` triples (``(x, y)`` means ``(x, y, 1)``), checked.

    Raises:
        ValueError: no sizes, the window missing from them, a size smaller than the
            window or differing from it by an odd number of voxels along an axis.
    """
    window3 = tuple(resolve_window(window, (1, 1, 1)))
    triples = tuple(tuple(resolve_window(s, (1, 1, 1))) for s in sizes)
    if not triples or window3 not in triples:
        raise ValueError(f"the multi-scale sizes {[list(s) for s in triples]} must include the window {list(window3)}")
    for size in triples:
        if any(s < w or (s - w) % 2 for s, w in zip(size, window3)):
            raise ValueError(f"multi-scale size {list(size)} must be at least the window {list(window3)} along "
                             "each axis, and differ from it by an even number of voxels (one shared centre)")
    return triples  # type: ignore[return-value]


def _crop_centre(array: np.ndarray, size: Sequence[int]) -> np.ndarray:
    start = [(a - s) // 2 for a, s in zip(array.shape[:3], size)]
    return array[tuple(slice(b, b + s) for b, s in zip(start, size))]


def stack_scales(support: np.ndarray, window: Sequence[int], sizes: Sequence[Sequence[int]]) -> np.ndarray:
    """``(wx, wy, wz, K·C)`` float32: each centred ``size`` crop of ``support`` area-resized to ``window``."""
    return np.concatenate([area_resize(_crop_centre(support, size), window) for size in sizes], axis=-1)


class MultiScaleSampler(CentredSampler):
    """Windows with their coarser context as extra channels.

    Args:
        window_size: ``(x, y, z)`` network window in voxels (the finest scale).
        sizes: context sizes ``(x, y, z)`` (or ``(x, y)``), one of them the window, in channel order.
        samples_per_volume: windows per call.
        rng: random generator (for ``centres``).
        centres: a sampler whose box centres are the window centres (give it the window
            size), or None for the volume's centre.
        context: names of the volumes given every scale; the others (labels, maps) are
            cut at the window only.

    Raises:
        ValueError: see :func:`check_scales`.
    """

    def __init__(self, window_size: Sequence[int], sizes: Sequence[Sequence[int]], samples_per_volume: int,
                 rng: np.random.Generator | None, centres: WindowSampler | None = None,
                 context: Collection[str] = ("image",)) -> None:
        super().__init__(window_size, samples_per_volume, rng, centres)
        self.window = tuple(resolve_window(self.window_size, (1, 1, 1)))
        self.sizes = check_scales(self.window, sizes)
        self.context = tuple(context)
        self.support = np.max(np.array(self.sizes, np.int64), axis=0)

    def finish(self, support: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One window from a cut (or augmented) support box: context volumes ->
        ``(wx, wy, wz, K·C)`` float32, others -> their ``(wx, wy, wz, c)`` centre, and
        ``"location"`` -> the window's box."""
        window = {name: (stack_scales(v, self.window, self.sizes) if name in self.context
                         else np.ascontiguousarray(_crop_centre(v, self.window)))
                  for name, v in support.items() if name != LOCATION_KEY}
        if LOCATION_KEY in support:
            box = np.asarray(support[LOCATION_KEY], np.int64)
            start = box[:3] + (self.support - np.array(self.window)) // 2
            window[LOCATION_KEY] = np.concatenate([start, start + self.window]).astype(np.int32)
        return window


class MultiScaleGridSampler(GridSampler):
    """:class:`~niftykit.sampler.GridSampler` whose windows carry their coarser context.

    Locations, padding and order are the plain grid's (an aggregator treats it as
    one); each window's channels are its :func:`stack_scales` over ``sizes``, the
    contexts cut from the volume around the window's centre (zeros outside it).

    Args:
        volume: ``(x, y, z, c)`` image.
        window_size: ``(x, y, z)`` window (the finest scale, one of ``sizes``).
        border: ``(x, y, z)`` border, as for :class:`~niftykit.sampler.GridSampler`.
        sizes: context sizes, see :func:`check_scales`.
        pad_mode, overlap: as for :class:`~niftykit.sampler.GridSampler`.
    """

    def __init__(self, volume: np.ndarray, window_size: Sequence[int], border: Sequence[int],
                 sizes: Sequence[Sequence[int]], pad_mode: str = "minimum", *,
                 overlap: float | Sequence[float] = 0.0) -> None:
        super().__init__(volume, window_size, border, pad_mode, overlap=overlap)
        self.sizes = check_scales(self.window_size, sizes)
        self._volume = {"image": volume}
        self._support = np.max(np.array(self.sizes, np.int64), axis=0)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(B, wx, wy, wz, K·c)`` float32 windows and their ``(B, 6)`` locations."""
        for windows, locations in super().batches(batch_size):
            yield np.stack([self._scales(w, loc) for w, loc in zip(windows, locations)]), locations

    def _scales(self, window: np.ndarray, location: np.ndarray) -> np.ndarray:
        start = location[:3].astype(np.int64) - (self._support - np.array(self.window_size)) // 2
        support = cut_window(self._volume, np.concatenate([start, start + self._support]))["image"]
        channels = [window.astype(np.float32) if tuple(size) == tuple(self.window_size)
                    else area_resize(_crop_centre(support, size), self.window_size) for size in self.sizes]
        return np.concatenate(channels, axis=-1)
