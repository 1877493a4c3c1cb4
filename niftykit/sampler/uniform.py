"""Uniform window sampling for training (NiftyNet's ``UniformSampler``,
``niftynet/engine/sampler_uniform_v2.py``).

Window starts are drawn uniformly so that every window lies inside the
volume; along an axis where the volume is smaller than the window the box is
centred on the volume and the overhang zero-filled (see
:mod:`niftykit.sampler.window`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from niftykit.sampler.window import WindowSampler

__all__ = ["UniformSampler"]


class UniformSampler(WindowSampler):
    """Draw windows at uniformly random positions.

    ``UniformSampler(window_size, samples_per_volume, rng)(volumes)`` returns
    ``samples_per_volume`` window dicts (see :class:`WindowSampler`).

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window size in voxels; <= 0
            along an axis means the whole extent (see :func:`resolve_window`).
        samples_per_volume: windows drawn per call.
        rng: random generator (seed it for reproducible windows).
    """

    def locations(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 6)`` int64 boxes with starts uniform over the positions where the window fits.

        Along an axis where it does not fit, the start is ``-(overhang // 2)``.
        """
        shape, window = self.geometry(volumes)
        extra = np.maximum(window - shape, 0)
        starts = self.rng.integers(0, shape + extra - window + 1, size=(n, 3)) - extra // 2
        return np.concatenate([starts, starts + window], axis=1).astype(np.int64)
