"""Uniform window sampling for training (NiftyNet's ``UniformSampler``).

Window starts are drawn uniformly so that every window lies inside the
volume; a volume smaller than the window along an axis is zero-padded,
symmetrically, to the window size first.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from niftykit.typing import Shape3

__all__ = ["UniformSampler", "resolve_window", "common_spatial_shape"]

LOCATION_KEY = "location"


def resolve_window(window_size: Sequence[int], spatial_shape: Sequence[int]) -> Shape3:
    """Apply NiftyNet's window-size rules to one volume.

    A size <= 0 along an axis means the whole extent of ``spatial_shape``; a
    2-element size ``(x, y)`` is a 2-D window ``(x, y, 1)``.

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window size in voxels.
        spatial_shape: ``(x, y, z)`` volume size in voxels.

    Returns:
        ``(wx, wy, wz)`` positive window size in voxels.
    """
    size = [int(w) for w in window_size]
    if len(size) == 2:
        size.append(1)
    if len(size) != 3 or len(spatial_shape) != 3:
        raise ValueError(f"window size {tuple(window_size)} and volume shape {tuple(spatial_shape)} must be (x, y, z)")
    x, y, z = (w if w > 0 else int(s) for w, s in zip(size, spatial_shape))
    return x, y, z


def common_spatial_shape(volumes: Mapping[str, np.ndarray]) -> Shape3:
    """The ``(x, y, z)`` shape shared by named ``(x, y, z, c)`` volumes.

    Raises:
        ValueError: no volumes, a volume is not 4-D, or the shapes differ.
    """
    if not volumes:
        raise ValueError("no volumes to sample from")
    shapes = {name: tuple(int(s) for s in v.shape[:3]) for name, v in volumes.items()}
    for name, volume in volumes.items():
        if volume.ndim != 4:
            raise ValueError(f"volume {name!r} must be (x, y, z, channels), got shape {volume.shape}")
    if len(set(shapes.values())) > 1:
        raise ValueError(f"volumes must share their spatial shape to be sampled together, got {shapes}")
    x, y, z = next(iter(shapes.values()))
    return x, y, z


class UniformSampler:
    """Draw windows at uniformly random positions.

    Args:
        window_size: ``(x, y, z)`` window size in voxels; <= 0 along an axis
            means the whole extent (see :func:`resolve_window`).
        samples_per_volume: windows drawn per call.
        rng: random generator (seed it for reproducible windows).
    """

    def __init__(self, window_size: Sequence[int], samples_per_volume: int, rng: np.random.Generator) -> None:
        if samples_per_volume < 1:
            raise ValueError(f"samples_per_volume must be >= 1, got {samples_per_volume}")
        self.window_size = tuple(int(w) for w in window_size)
        self.samples_per_volume = int(samples_per_volume)
        self.rng = rng

    def __call__(self, volumes: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Cut ``samples_per_volume`` windows at the same place from every volume.

        Args:
            volumes: name -> ``(x, y, z, c)`` array, all of one spatial shape.

        Returns:
            One dict per window: name -> ``(wx, wy, wz, c)`` C-contiguous
            array (dtype kept), and ``"location"`` -> int32
            ``[x0, y0, z0, x1, y1, z1]`` in the unpadded volume's voxels
            (negative / past the end along axes that were padded).

        Raises:
            ValueError: the volumes differ in spatial shape or are not 4-D.
        """
        if LOCATION_KEY in volumes:
            raise ValueError(f"a volume cannot be named {LOCATION_KEY!r}; that key holds the window location")
        shape = np.array(common_spatial_shape(volumes))
        window = np.array(resolve_window(self.window_size, shape))
        extra = np.maximum(window - shape, 0)
        before = extra // 2
        if extra.any():
            pads = [(int(b), int(e - b)) for b, e in zip(before, extra)] + [(0, 0)]
            volumes = {name: np.pad(v, pads, mode="constant") for name, v in volumes.items()}
        starts = self.rng.integers(0, shape + extra - window + 1, size=(self.samples_per_volume, 3))
        return [self._cut(volumes, start, window, before) for start in starts]

    @staticmethod
    def _cut(volumes: Mapping[str, np.ndarray], start: np.ndarray, window: np.ndarray, before: np.ndarray) -> dict:
        box = tuple(slice(int(s), int(s + w)) for s, w in zip(start, window))
        sample = {name: np.ascontiguousarray(v[box]) for name, v in volumes.items()}
        origin = start - before
        sample[LOCATION_KEY] = np.concatenate([origin, origin + window]).astype(np.int32)
        return sample
