"""Window centres balanced over label classes (NiftyNet's ``BalancedSampler``,
``niftynet/engine/sampler_balanced_v2.py``).

Each draw picks a class uniformly among those present where a centre may lie
(the label map cropped by half a window at each border, see
:func:`~niftykit.sampler.window.centre_range`), then a voxel of that class
uniformly, with replacement, as the window centre. A voxel ``v`` is thus drawn
with probability ``1 / (number of classes * number of voxels of v's class)``:
a 10-voxel organ is centred as often as the background. NiftyNet drew the
per-class counts from ``Multinomial(n, uniform)`` and returned the centres
grouped by class; independent draws give the same counts, in random order.

The per-class voxel lists are built once per label map (one stable argsort)
and cached for read-only maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from niftykit.sampler.window import (ArrayCache, WindowSampler, boxes_at, centre_range,
                                     single_channel)

__all__ = ["BalancedSampler"]


class _ClassIndex(NamedTuple):
    classes: np.ndarray  # (k,) label values present, ascending
    order: np.ndarray  # (m,) flat region indices grouped by class
    offsets: np.ndarray  # (k,) where each class starts in ``order``
    counts: np.ndarray  # (k,) voxels per class
    lo: np.ndarray  # (3,) first allowed centre
    shape: tuple[int, int, int]  # allowed-centre region


def _index_classes(label: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> _ClassIndex:
    region = label[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2], 0]
    flat = region.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    offsets = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    counts = np.diff(np.append(offsets, ordered.size))
    shape = tuple(int(s) for s in region.shape)
    return _ClassIndex(ordered[offsets], order, offsets, counts, lo, shape)  # type: ignore[arg-type]


class BalancedSampler(WindowSampler):
    """Draw windows so that every label class is equally often at the centre.

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window size in voxels; <= 0
            along an axis means the whole extent.
        samples_per_volume: windows drawn per call.
        rng: random generator (seed it for reproducible windows).
        label_name: the ``(x, y, z, 1)`` label volume to balance. It stays in
            the windows (it is usually the training target). It must not change
            in place while in use; read-only maps have their class index cached.
    """

    def __init__(
        self, window_size: Sequence[int], samples_per_volume: int, rng: np.random.Generator, label_name: str = "label"
    ) -> None:
        super().__init__(window_size, samples_per_volume, rng)
        self.label_name = label_name
        self._cache = ArrayCache(max_entries=4)

    def draw(self, volumes: Mapping[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` classes and a centre voxel of each.

        Returns:
            ``(n,)`` drawn label values (the label map's dtype) and ``(n, 3)``
            int64 centre voxels, whose label is the drawn value.

        Raises:
            ValueError: the label volume is missing or has more than one
                channel, or the volumes do not share a shape.
        """
        shape, window = self.geometry(volumes)
        label = single_channel(volumes, self.label_name, "balanced sampling (label)")
        lo, hi = centre_range(shape, window)
        index = self._cache.get(label, tuple(window), lambda: _index_classes(label, lo, hi))
        chosen = self.rng.integers(0, index.classes.size, size=n)
        picks = self.rng.integers(0, index.counts[chosen])
        flat = index.order[index.offsets[chosen] + picks]
        centres = np.stack(np.unravel_index(flat, index.shape), axis=1).astype(np.int64) + index.lo
        return index.classes[chosen], centres

    def centres(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 3)`` int64 centre voxels (see :meth:`draw`)."""
        return self.draw(volumes, n)[1]

    def locations(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 6)`` int64 window boxes around :meth:`centres`."""
        shape, window = self.geometry(volumes)
        return boxes_at(self.centres(volumes, n), shape, window)
