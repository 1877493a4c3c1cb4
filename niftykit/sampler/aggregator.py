"""Stitching window outputs back into a volume (NiftyNet's ``GridSamplesAggregator``).

NiftyNet's "crop" aggregation: from each window only its central part, the
window minus ``border`` on every side, is written; where windows overlap
the later one wins. Holds one output volume, never the list of windows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from niftykit.sampler.grid import GridSampler

__all__ = ["GridAggregator"]


def _ints(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


class GridAggregator:
    """Write network outputs for a :class:`GridSampler`'s windows into one volume.

    Args:
        sampler: the sampler whose windows are being processed.
        num_channels: channels ``C`` of the network output.
        fill_constant: value of voxels no window has written yet.
        dtype: dtype of the output volume.
    """

    def __init__(
        self, sampler: GridSampler, num_channels: int, *, fill_constant: float = 0.0, dtype: DTypeLike = np.float32
    ) -> None:
        self.sampler = sampler
        self.num_channels = int(num_channels)
        self._volume = np.full(tuple(sampler.padded_shape) + (self.num_channels,), fill_constant, dtype=dtype)
        self._added = 0

    def add(self, outputs: np.ndarray, locations: np.ndarray) -> None:
        """Write a batch of outputs.

        Args:
            outputs: ``(B, ox, oy, oz, C)`` network outputs (``(B, ox, oy, oz)``
                when ``C`` is 1), each centred in its window; ``ox`` may be
                smaller than the window (valid convolutions).
            locations: ``(B, 6)`` the windows' locations from the sampler.

        Raises:
            ValueError: shapes disagree, or an output does not cover its
                window minus the border (the message gives the border needed).
        """
        outputs, locations = np.asarray(outputs), np.asarray(locations)
        if outputs.ndim == 4 and self.num_channels == 1:
            outputs = outputs[..., np.newaxis]
        if outputs.ndim != 5 or outputs.shape[-1] != self.num_channels:
            raise ValueError(f"outputs must be (B, x, y, z, {self.num_channels}), got {outputs.shape}")
        if locations.ndim != 2 or locations.shape != (len(outputs), 6):
            raise ValueError(f"locations must be ({len(outputs)}, 6), got {locations.shape}")
        for output, location in zip(outputs, locations):
            self._write(output, location)
            self._added += 1

    def _write(self, output: np.ndarray, location: np.ndarray) -> None:
        border = self.sampler.border
        window = location[3:] - location[:3]
        size = np.array(output.shape[:3])
        offset = (window - size) // 2
        if np.any(offset > border) or np.any(offset + size < window - border):
            needed = np.maximum(offset, window - offset - size)
            raise ValueError(
                f"network output {_ints(size)} does not cover window {_ints(window)} minus border "
                f"{_ints(border)} on each side; set the inference border to at least {_ints(needed)}"
            )
        start = location[:3] + self.sampler.pad_before
        src = tuple(slice(int(b - o), int(w - b - o)) for b, o, w in zip(border, offset, window))
        dst = tuple(slice(int(s + b), int(s + w - b)) for s, b, w in zip(start, border, window))
        self._volume[dst] = output[src]

    def result(self) -> np.ndarray:
        """The stitched ``(x, y, z, C)`` output on the original volume's grid.

        Raises:
            RuntimeError: not every window of the sampler has been added.
        """
        if self._added < len(self.sampler.locations):
            raise RuntimeError(f"only {self._added} of {len(self.sampler.locations)} windows have been added")
        crop = tuple(slice(int(b), int(b + s)) for b, s in zip(self.sampler.pad_before, self.sampler.original_shape))
        return np.ascontiguousarray(self._volume[crop])
