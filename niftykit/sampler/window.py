"""Where a training window lies, and cutting it out (shared by every random sampler).

A sampler only chooses *where* its windows go: :meth:`WindowSampler.locations`
returns boxes ``[x0, y0, z0, x1, y1, z1]`` in the volume's voxels, and
:func:`cut_window` copies them out. Augmentation can therefore take the boxes
and resample each window directly instead of cutting it.

Boxes are window-sized. Along an axis where the volume is smaller than the
window the box is centred on the volume (the overhang split as NiftyNet's
padding would, the extra voxel after) and zero-filled when cut.

NiftyNet counterparts: ``niftynet/engine/image_window.py`` (window sizes:
values <= 0 take the whole axis, 2-element sizes are 2-D windows) and the
``window_centers_sampler`` hook of ``niftynet/engine/sampler_uniform_v2.py``.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from niftykit.typing import Shape3

__all__ = [
    "LOCATION_KEY",
    "ArrayCache",
    "WindowSampler",
    "boxes_at",
    "centre_range",
    "common_spatial_shape",
    "cut_window",
    "resolve_window",
]

#: Key of the ``[x0, y0, z0, x1, y1, z1]`` int32 box in every window dict.
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
    for name, volume in volumes.items():
        if volume.ndim != 4:
            raise ValueError(f"volume {name!r} must be (x, y, z, channels), got shape {volume.shape}")
    shapes = {name: tuple(int(s) for s in v.shape[:3]) for name, v in volumes.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"volumes must share their spatial shape to be sampled together, got {shapes}")
    x, y, z = next(iter(shapes.values()))
    return x, y, z


def cut_window(
    volumes: Mapping[str, np.ndarray], location: Sequence[int], *, exclude: Collection[str] = ()
) -> dict[str, np.ndarray]:
    """Copy one box out of every volume, zero-filling where it leaves the volume.

    Only the overlap of box and volume is copied; the volume is never padded.

    Args:
        volumes: name -> ``(x, y, z, c)`` array.
        location: ``[x0, y0, z0, x1, y1, z1]`` in the volume's voxels (``x1``
            exclusive); may extend past either end of any axis.
        exclude: names to leave out of the window (e.g. a sampling map).

    Returns:
        name -> ``(x1 - x0, y1 - y0, z1 - z0, c)`` new C-contiguous array of the
        volume's dtype, and ``"location"`` -> the box as an int32 ``(6,)`` array.

    Raises:
        ValueError: ``location`` is not 6 integers with ``x1 > x0`` etc., or a
            volume is not 4-D.
    """
    box = np.asarray(location).reshape(-1)
    if box.shape != (6,) or box.dtype.kind not in "iu" or np.any(box[3:] <= box[:3]):
        raise ValueError(f"location must be 6 integers [x0, y0, z0, x1, y1, z1] with x1 > x0 etc., got {location}")
    box = box.astype(np.int64)
    window = {name: _cut(name, v, box[:3], box[3:]) for name, v in volumes.items() if name not in exclude}
    window[LOCATION_KEY] = box.astype(np.int32)
    return window


def _cut(name: str, volume: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    if volume.ndim != 4:
        raise ValueError(f"volume {name!r} must be (x, y, z, channels), got shape {volume.shape}")
    shape = np.array(volume.shape[:3])
    lo, hi = np.clip(start, 0, shape), np.clip(stop, 0, shape)
    if np.all(lo == start) and np.all(hi == stop):
        return np.array(volume[tuple(slice(a, b) for a, b in zip(lo, hi))], order="C")
    out = np.zeros(tuple(stop - start) + volume.shape[3:], dtype=volume.dtype)
    hi = np.maximum(hi, lo)
    src = tuple(slice(a, b) for a, b in zip(lo, hi))
    dst = tuple(slice(a, b) for a, b in zip(lo - start, hi - start))
    out[dst] = volume[src]
    return out


def centre_range(spatial_shape: Sequence[int], window: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Voxels that may be a window's centre, per axis ``[lo, hi)``.

    Along an axis where the window fits, the centre ``c`` gives the box start
    ``c - window // 2`` and ``lo, hi`` keep the whole box inside the volume
    (NiftyNet's ``crop_sampling_map``, without its loss of the last start for
    even windows). Where it does not fit every voxel is allowed: the box is
    then fixed (centred on the volume) and contains all of them.

    Returns:
        ``lo``, ``hi``: ``(3,)`` int64 arrays.
    """
    shape, window = np.asarray(spatial_shape, np.int64), np.asarray(window, np.int64)
    fits = window <= shape
    lo = np.where(fits, window // 2, 0)
    hi = np.where(fits, shape - window + window // 2 + 1, shape)
    return lo, hi


def boxes_at(centres: np.ndarray, spatial_shape: Sequence[int], window: Sequence[int]) -> np.ndarray:
    """Window boxes around centre voxels (see :func:`centre_range`).

    Args:
        centres: ``(n, 3)`` voxel indices.
        spatial_shape: ``(x, y, z)`` of the volume.
        window: ``(wx, wy, wz)`` resolved window size.

    Returns:
        ``(n, 6)`` int64 ``[x0, y0, z0, x1, y1, z1]``.
    """
    shape, window = np.asarray(spatial_shape, np.int64), np.asarray(window, np.int64)
    start = np.where(window <= shape, np.asarray(centres, np.int64) - window // 2, -((window - shape) // 2))
    return np.concatenate([start, start + window], axis=1)


def single_channel(volumes: Mapping[str, np.ndarray], name: str, what: str) -> np.ndarray:
    """The one-channel volume ``name`` that a sampler draws its centres from.

    Raises:
        ValueError: it is missing (the message lists the volumes present) or has
            more than one channel.
    """
    if name not in volumes:
        raise ValueError(f"{what} needs a volume {name!r}; got volumes {sorted(volumes)}")
    volume = volumes[name]
    if volume.shape[3] != 1:
        raise ValueError(f"{what} volume {name!r} must have one channel, got shape {volume.shape}")
    return volume


class ArrayCache:
    """A small least-recently-used cache of values derived from an array.

    Keyed by the array's identity (``id`` checked against a weak reference, so
    a recycled ``id`` never hits). Only read-only arrays are cached (those from
    :class:`~niftykit.io.cache.VolumeCache` are): a writeable one could change
    in place, so its value is rebuilt on every call. Thread-safe.

    Args:
        max_entries: entries kept; the least recently used is dropped first.
    """

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[Hashable, tuple[weakref.ref[np.ndarray], Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, array: np.ndarray, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached value for ``(array, key)``, calling ``build()`` on a miss."""
        if array.flags.writeable:
            return build()
        full_key = (id(array), key)
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and entry[0]() is array:
                self._entries.move_to_end(full_key)
                return entry[1]
        value = build()
        ref = weakref.ref(array)
        with self._lock:
            self._entries[full_key] = (ref, value)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value


class WindowSampler:
    """Base of the random training samplers: choose boxes, cut them.

    Subclasses implement :meth:`locations`.

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window size in voxels; <= 0
            along an axis means the whole extent (see :func:`resolve_window`).
        samples_per_volume: windows per call.
        rng: random generator (seed it for reproducible windows).

    Attributes:
        exclude: volume names used for sampling only, left out of the windows.
    """

    exclude: tuple[str, ...] = ()

    def __init__(self, window_size: Sequence[int], samples_per_volume: int, rng: np.random.Generator | None) -> None:
        if samples_per_volume < 1:
            raise ValueError(f"samples_per_volume must be >= 1, got {samples_per_volume}")
        if len(window_size) not in (2, 3):
            raise ValueError(f"window size must be (x, y, z) or (x, y), got {tuple(window_size)}")
        self.window_size = tuple(int(w) for w in window_size)
        self.samples_per_volume = int(samples_per_volume)
        self.rng = rng

    def geometry(self, volumes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y, z)`` shape of the volumes and the resolved ``(wx, wy, wz)`` window, as int64 arrays.

        Raises:
            ValueError: a volume is named ``"location"``, is not 4-D, or the shapes differ.
        """
        if LOCATION_KEY in volumes:
            raise ValueError(f"a volume cannot be named {LOCATION_KEY!r}; that key holds the window location")
        shape = common_spatial_shape(volumes)
        return np.array(shape, np.int64), np.array(resolve_window(self.window_size, shape), np.int64)

    def locations(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 6)`` int64 boxes ``[x0, y0, z0, x1, y1, z1]`` of window size in ``volumes``."""
        raise NotImplementedError(f"{type(self).__name__} must implement locations()")

    def __call__(self, volumes: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Cut ``samples_per_volume`` windows, each at one place in every volume.

        Args:
            volumes: name -> ``(x, y, z, c)`` array, all of one spatial shape.

        Returns:
            One dict per window (see :func:`cut_window`): name -> ``(wx, wy, wz, c)``
            array for every volume not in :attr:`exclude`, and ``"location"``.
        """
        boxes = self.locations(volumes, self.samples_per_volume)
        return [cut_window(volumes, box, exclude=self.exclude) for box in boxes]
