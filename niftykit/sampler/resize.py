"""Whole volumes zoomed to the window size, and back (NiftyNet's ``ResizeSampler``,
``niftynet/engine/sampler_resize_v2.py``, and ``ResizeSamplesAggregator``,
``niftynet/engine/windows_aggregator_resize.py``).

This is the dense V-network protocol (Gibson et al., IEEE TMI 2018): the
network sees the whole abdomen at a fixed, coarse size, and its output is
zoomed back to the input grid.

Voxel convention (NiftyNet's ``zoom_3d``, ``scipy.ndimage.zoom(grid_mode=True)``):
voxels are cells and the volume's outer edges map onto the window's outer
edges, so output voxel centre ``j`` samples input coordinate
``(j + 0.5) * in_size / out_size - 0.5``. Zooming up by an integer factor
``k`` with order 0 repeats every voxel ``k`` times, and zooming that back down
picks one of the copies, so labels survive the round trip exactly. Samples up
to half a voxel past the edge take the edge value (``mode="nearest"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from niftykit.sampler.window import LOCATION_KEY, WindowSampler

__all__ = ["ResizeAggregator", "ResizeSampler", "resize_to"]


def resize_to(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """Zoom a volume to a spatial shape, channel by channel (convention above).

    Args:
        array: ``(x, y, z, c)`` volume.
        shape: ``(X, Y, Z)`` target size in voxels.
        order: spline order, 0 (nearest, for labels) to 5.

    Returns:
        ``(X, Y, Z, c)`` C-contiguous array of ``array``'s dtype (a copy even
        when the shape is unchanged).
    """
    if array.ndim != 4 or len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"resize_to needs an (x, y, z, c) array and an (x, y, z) shape, got {array.shape}, {shape}")
    if not 0 <= order <= 5:
        raise ValueError(f"interpolation order must be 0 to 5, got {order}")
    target = tuple(int(s) for s in shape)
    if array.shape[:3] == target:
        return np.array(array, order="C")
    scale = np.array(array.shape[:3], np.float64) / np.array(target, np.float64)
    out = np.empty(target + array.shape[3:], dtype=array.dtype)
    for c in range(array.shape[3]):
        ndimage.affine_transform(
            array[..., c], scale, offset=0.5 * scale - 0.5, output_shape=target,
            output=out[..., c], order=order, mode="nearest",
        )
    return out


class ResizeSampler(WindowSampler):
    """Zoom each whole volume to the window size.

    Every call returns ``samples_per_volume`` identical windows (independent
    copies; the augmentation applied after makes them differ), each with
    ``"location"`` = the whole volume ``[0, 0, 0, x, y, z]``.

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window size in voxels; <= 0
            along an axis keeps that axis' size.
        samples_per_volume: copies per call.
        orders: interpolation order per volume name. Names not given use 0 for
            integer and boolean volumes (labels) and 1 otherwise.
        rng: unused (resizing is deterministic); accepted so that every
            sampler takes one.
    """

    def __init__(
        self,
        window_size: Sequence[int],
        samples_per_volume: int,
        orders: Mapping[str, int] | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        if orders is not None and not isinstance(orders, Mapping):
            raise TypeError(f"orders must map volume names to interpolation orders, got {type(orders).__name__}")
        super().__init__(window_size, samples_per_volume, rng)
        self.orders = dict(orders or {})

    def order_for(self, name: str, volume: np.ndarray) -> int:
        """The interpolation order used for volume ``name``."""
        if name in self.orders:
            return int(self.orders[name])
        return 0 if volume.dtype.kind in "iub" else 1

    def locations(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 6)`` int64 copies of the whole-volume box ``[0, 0, 0, x, y, z]``."""
        shape, _ = self.geometry(volumes)
        return np.tile(np.concatenate([np.zeros(3, np.int64), shape]), (n, 1))

    def __call__(self, volumes: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """``samples_per_volume`` dicts: name -> ``(wx, wy, wz, c)`` zoomed volume, and ``"location"``."""
        shape, window = self.geometry(volumes)
        first = {name: resize_to(v, window, self.order_for(name, v)) for name, v in volumes.items()}
        first[LOCATION_KEY] = np.concatenate([np.zeros(3, np.int64), shape]).astype(np.int32)
        copies = [{name: v.copy() for name, v in first.items()} for _ in range(self.samples_per_volume - 1)]
        return [first] + copies


class ResizeAggregator:
    """Zoom a network output for a :class:`ResizeSampler` window back to the input grid.

    Holds one output volume; a later :meth:`add` replaces it, as NiftyNet's
    aggregator saved one window per image (average test-time-augmented
    outputs before adding them).

    Args:
        spatial_shape: ``(x, y, z)`` of the volume the window was zoomed from.
        num_channels: channels ``C`` of the network output.
        order: interpolation order (1 for probabilities, 0 for labels).
    """

    def __init__(self, spatial_shape: Sequence[int], num_channels: int, order: int = 1) -> None:
        if len(spatial_shape) != 3:
            raise ValueError(f"spatial_shape must be (x, y, z), got {tuple(spatial_shape)}")
        self.spatial_shape = tuple(int(s) for s in spatial_shape)
        self.num_channels = int(num_channels)
        self.order = int(order)
        self._volume: np.ndarray | None = None

    def add(self, output: np.ndarray) -> None:
        """Zoom one output back.

        Args:
            output: ``(1, wx, wy, wz, C)`` or ``(wx, wy, wz, C)`` network output.

        Raises:
            ValueError: wrong rank, a batch of more than one, or wrong channels.
        """
        output = np.asarray(output)
        if output.ndim == 5 and output.shape[0] == 1:
            output = output[0]
        if output.ndim != 4 or output.shape[-1] != self.num_channels:
            raise ValueError(f"output must be (1, x, y, z, {self.num_channels}) or (x, y, z, {self.num_channels}), "
                             f"got {output.shape}")
        self._volume = resize_to(output, self.spatial_shape, self.order)

    def result(self) -> np.ndarray:
        """The ``(x, y, z, C)`` output on the input grid, in the output's dtype.

        Raises:
            RuntimeError: nothing has been added.
        """
        if self._volume is None:
            raise RuntimeError("no output has been added to the ResizeAggregator")
        return self._volume
