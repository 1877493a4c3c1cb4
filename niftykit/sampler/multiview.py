"""2.5-D sampling: orthogonal and oblique 2-D views through one centre, for 2-D networks on 3-D data.

A :class:`MultiViewSampler` window is a stack of square ``s × s`` planes through a
centre voxel, each plane a channel group of one ``(s, s, 1, V·C)`` window: the
axial ``(x, y)``, coronal ``(x, z)`` and sagittal ``(y, z)`` planes, in the order
asked for, then ``n`` oblique planes that contain one coordinate axis and are
rotated about it by ``k · 180° / n`` (``k = 0 … n-1``). ``views=("axial",)`` is Tu
et al.'s SINGLE input, the three orthogonal planes their ALL input (Sci Rep 7:8533,
2017); oblique planes are the rotated views of Ciompi et al. (MedIA 26(1):195-202,
2015), here fed to one network as channels instead of to an ensemble.

Plane index ``i`` lies ``i - s // 2`` voxels from the centre, so the orthogonal
planes are exact array slices (the axial plane through ``c`` is
``volume[cx - s//2 : cx - s//2 + s, cy - s//2 : cy - s//2 + s, cz]``) and the
oblique ones are sampled from the same grid by trilinear interpolation
(``scipy.ndimage.map_coordinates``, order 1; order 0 for integer volumes). The
rotation axis fixes the 0° plane: about x the planes go from axial (0°) to
coronal (90°), about y from axial to the ``(z, y)`` plane, about z from coronal to
sagittal. Sizes are voxels of the preprocessed grid: set the inputs' ``pixdim``
to make them millimetres (and the planes undistorted on anisotropic scans).

Every plane lies inside the cube of side ``2 · (s // 2) + 1`` around the centre
(a rotation about a coordinate axis moves no in-plane offset beyond ``s // 2``), so
a window is cut in two steps: :meth:`CentredSampler.locations` gives that cube
(the *support*), and :meth:`CentredSampler.finish` turns a cut - or augmented -
support into the window. Augmentation therefore rotates, scales and flips the 3-D
neighbourhood before the views are taken. Voxels outside the volume are zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from niftykit.sampler.window import LOCATION_KEY, WindowSampler, cut_window

__all__ = ["CentredSampler", "MultiViewSampler", "ORTHOGONAL_VIEWS", "cut_views", "plane_axes"]

#: orthogonal view -> the two volume axes it spans, in plane order
ORTHOGONAL_VIEWS = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}
_ROTATION_AXES = ("x", "y", "z")


class CentredSampler(WindowSampler):
    """Base of the samplers whose window is computed from a support box around a centre.

    Subclasses set :attr:`support` and implement :meth:`finish`. Centres come from
    ``centres`` - a :class:`~niftykit.sampler.WindowSampler` (uniform, balanced,
    weighted) whose box centres are taken, so give it the window whose fit in the
    volume should limit the centres - or, without one, are the volume's centre voxel
    ``shape // 2`` (candidate-centred patches).

    Args:
        window_size: ``(x, y, z)`` or ``(x, y)`` window in voxels (positive).
        samples_per_volume: windows per call.
        rng: random generator, used by ``centres`` only.
        centres: where centres come from; None for the volume's centre.
    """

    #: ``(3,)`` int64 size of the support box in voxels
    support: np.ndarray

    def __init__(self, window_size: Sequence[int], samples_per_volume: int,
                 rng: np.random.Generator | None, centres: WindowSampler | None = None) -> None:
        super().__init__(window_size, samples_per_volume, rng)
        if min(self.window_size) < 1:
            raise ValueError(f"window size must be positive, got {self.window_size}")
        self.centres = centres
        self.exclude = tuple(centres.exclude) if centres is not None else ()

    def centre_voxels(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 3)`` int64 centre voxels."""
        shape, _ = self.geometry(volumes)
        if self.centres is None:
            return np.tile(shape // 2, (n, 1))
        boxes = self.centres.locations(volumes, n)
        return boxes[:, :3] + (boxes[:, 3:] - boxes[:, :3]) // 2

    def support_boxes(self, centres: np.ndarray) -> np.ndarray:
        """``(n, 6)`` int64 support boxes around ``(n, 3)`` centre voxels."""
        start = np.asarray(centres, np.int64).reshape(-1, 3) - self.support // 2
        return np.concatenate([start, start + self.support], axis=1)

    def locations(self, volumes: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, 6)`` int64 support boxes ``[x0, y0, z0, x1, y1, z1]`` (not window-sized)."""
        return self.support_boxes(self.centre_voxels(volumes, n))

    def finish(self, support: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The window of one cut (or augmented) support: name -> array, and ``"location"``."""
        raise NotImplementedError(f"{type(self).__name__} must implement finish()")

    def windows_at(self, volumes: Mapping[str, np.ndarray], centres: np.ndarray) -> list[dict[str, np.ndarray]]:
        """The windows around given ``(n, 3)`` centre voxels (e.g. for inference)."""
        return [self.finish(cut_window(volumes, box, exclude=self.exclude))
                for box in self.support_boxes(centres)]

    def __call__(self, volumes: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """``samples_per_volume`` windows (see :meth:`finish`)."""
        return self.windows_at(volumes, self.centre_voxels(volumes, self.samples_per_volume))


def plane_axes(axis: str, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """In-plane unit vectors ``(u, v)`` (voxel axes x, y, z) of the plane through ``axis``
    rotated by ``angle_deg`` (0°: axial about x or y, coronal about z)."""
    if axis not in _ROTATION_AXES:
        raise ValueError(f"rotation axis must be one of {_ROTATION_AXES}, got {axis!r}")
    cos, sin = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    if axis == "x":
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, cos, sin])
    if axis == "y":
        return np.array([cos, 0.0, sin]), np.array([0.0, 1.0, 0.0])
    return np.array([cos, sin, 0.0]), np.array([0.0, 0.0, 1.0])


def _oblique(cube: np.ndarray, size: int, axis: str, angle: float, order: int) -> np.ndarray:
    half = size // 2
    u, v = plane_axes(axis, angle)
    offsets = np.arange(size, dtype=np.float64) - half
    points = half + offsets[:, None, None] * u + offsets[None, :, None] * v  # (s, s, 3)
    coords = np.moveaxis(points, -1, 0)
    plane = np.empty((size, size, cube.shape[3]), cube.dtype)
    for c in range(cube.shape[3]):
        ndimage.map_coordinates(cube[..., c], coords, output=plane[..., c], order=order, mode="nearest")
    return plane


def cut_views(cube: np.ndarray, size: int, views: Sequence[str] = tuple(ORTHOGONAL_VIEWS),
              oblique: Sequence[float] = (), axis: str = "z", order: int = 1) -> np.ndarray:
    """The planes through the centre of a support cube, stacked as channels.

    Args:
        cube: ``(n, n, n, C)`` support, ``n = 2 * (size // 2) + 1``, centre voxel ``size // 2``.
        size: plane side ``s`` in voxels.
        views: orthogonal views, any of ``axial``, ``coronal``, ``sagittal``, in output order.
        oblique: rotation angles in degrees of the oblique planes, after the orthogonal ones.
        axis: rotation axis of the oblique planes, ``x``, ``y`` or ``z``.
        order: interpolation order of the oblique planes (1 trilinear, 0 nearest).

    Returns:
        ``(s, s, 1, V * C)`` array of ``cube``'s dtype, view-major (view 0's channels first).
    """
    n = 2 * (size // 2) + 1
    if cube.ndim != 4 or cube.shape[:3] != (n, n, n):
        raise ValueError(f"a support cube for {size}x{size} views must be ({n}, {n}, {n}, C), got {cube.shape}")
    half = size // 2
    planes = []
    for view in views:
        if view not in ORTHOGONAL_VIEWS:
            raise ValueError(f"unknown view {view!r}; views are {', '.join(ORTHOGONAL_VIEWS)}")
        index: list = [half, half, half]
        for a in ORTHOGONAL_VIEWS[view]:
            index[a] = slice(0, size)
        planes.append(cube[tuple(index)])
    planes += [_oblique(cube, size, axis, angle, order) for angle in oblique]
    if not planes:
        raise ValueError("no views: give at least one orthogonal view or one oblique plane")
    return np.ascontiguousarray(np.concatenate(planes, axis=-1)[:, :, None, :])


class MultiViewSampler(CentredSampler):
    """Square 2-D views through centre voxels, stacked as the channels of one 2-D window.

    ``MultiViewSampler(16, 4, rng, views=("axial", "coronal", "sagittal"))(volumes)``
    returns 4 dicts: name -> ``(16, 16, 1, 3 * C)`` and ``"location"`` (the support cube).

    Args:
        size: plane side ``s`` in voxels (a ``(s, s)`` or ``(s, s, 1)`` window also works).
        samples_per_volume: windows per call.
        rng: random generator (for ``centres``).
        views: orthogonal views in channel order (``("axial",)``: one view).
        oblique: number of oblique planes rotated about ``oblique_axis`` by ``k · 180° / n``.
        oblique_axis: ``x``, ``y`` or ``z``.
        centres: a sampler whose box centres are the view centres (give it the
            ``(s, s, s)`` window), or None for the volume's centre.
        orders: interpolation order of the oblique planes per volume name; others use
            0 for integer and boolean volumes and 1 (trilinear) otherwise.

    Raises:
        ValueError: a window that is not square and 2-D, an unknown view or axis, or no view.
    """

    def __init__(self, size: int | Sequence[int], samples_per_volume: int, rng: np.random.Generator | None,
                 views: Sequence[str] = tuple(ORTHOGONAL_VIEWS), oblique: int = 0, oblique_axis: str = "z",
                 centres: WindowSampler | None = None, orders: Mapping[str, int] | None = None) -> None:
        window = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)  # type: ignore
        if len(window) not in (2, 3) or window[0] != window[1] or (len(window) == 3 and window[2] != 1):
            raise ValueError(f"multi-view windows are square 2-D planes (s, s) or (s, s, 1), got {window}")
        super().__init__(window[:2], samples_per_volume, rng, centres)
        unknown = [v for v in views if v not in ORTHOGONAL_VIEWS]
        if unknown:
            raise ValueError(f"unknown view(s) {unknown}; views are {', '.join(ORTHOGONAL_VIEWS)}")
        if oblique_axis not in _ROTATION_AXES:
            raise ValueError(f"oblique axis must be one of {', '.join(_ROTATION_AXES)}, got {oblique_axis!r}")
        if int(oblique) < 0 or (not views and int(oblique) == 0):
            raise ValueError(f"give at least one view (views {list(views)}, oblique {oblique})")
        self.size = window[0]
        self.views = tuple(views)
        self.angles = tuple(180.0 * k / int(oblique) for k in range(int(oblique)))
        self.oblique_axis = oblique_axis
        self.orders = dict(orders or {})
        self.support = np.full(3, 2 * (self.size // 2) + 1, np.int64)

    @property
    def num_views(self) -> int:
        """Planes per window (``V``)."""
        return len(self.views) + len(self.angles)

    def finish(self, support: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The views of one cut (or augmented) support cube: name -> ``(s, s, 1, V·C)``."""
        window = {}
        for name, cube in support.items():
            if name == LOCATION_KEY:
                continue
            order = self.orders.get(name, 0 if cube.dtype.kind in "iub" else 1)
            window[name] = cut_views(cube, self.size, self.views, self.angles, self.oblique_axis, order)
        if LOCATION_KEY in support:
            window[LOCATION_KEY] = np.asarray(support[LOCATION_KEY], np.int32)
        return window
