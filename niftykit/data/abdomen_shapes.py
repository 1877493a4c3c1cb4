"""Implicit shapes for the synthetic abdomen, painted onto a tissue and a label map.

Shapes are evaluated only inside their bounding box (:meth:`ScanGrid.box`),
on the grid's deformed world coordinates, in mm:

* :func:`ellipsoid` returns ``q**2``, the squared normalised radius (inside
  where ``q**2 <= 1``), of a rotated ellipsoid;
* :func:`tube` returns the signed distance (mm, negative inside) to a
  polyline swept by a radius that varies linearly along each segment
  (capsules and truncated cones), so hollow organs get walls of a given
  thickness.

:class:`Canvas` holds the two maps; later paint wins, so the painting order
sets which organ owns a shared boundary.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from niftykit.data.abdomen_grid import ScanGrid

__all__ = ["Canvas", "rotation", "ellipsoid", "ellipsoid_bounds", "tube", "tube_bounds", "KEEP"]

#: ``label`` value for :meth:`Canvas.paint` that leaves the labels as they are.
KEEP = -1
Box = Tuple[slice, slice, slice]
Coords = Tuple[np.ndarray, np.ndarray, np.ndarray]


def rotation(about_x: float = 0.0, about_y: float = 0.0, about_z: float = 0.0) -> np.ndarray:
    """A ``(3, 3)`` rotation from angles in degrees (x, then y, then z)."""
    a, b, c = np.deg2rad([about_x, about_y, about_z])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ellipsoid(coords: Coords, centre: Sequence[float], semi: Sequence[float],
              rot: Optional[np.ndarray] = None) -> np.ndarray:
    """Squared normalised radius of the points ``coords`` in an ellipsoid (float32).

    ``rot`` maps the ellipsoid's own axes to the world (columns are its axes).
    """
    d = [c - np.float32(m) for c, m in zip(coords, centre)]
    if rot is None:
        local = d
    else:
        r = rot.astype(np.float32)
        local = [r[0, k] * d[0] + r[1, k] * d[1] + r[2, k] * d[2] for k in range(3)]
    q2 = (local[0] * np.float32(1.0 / semi[0])) ** 2
    q2 += (local[1] * np.float32(1.0 / semi[1])) ** 2
    q2 += (local[2] * np.float32(1.0 / semi[2])) ** 2
    return q2


def ellipsoid_bounds(centre: Sequence[float], semi: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """A world box holding the ellipsoid whatever its rotation."""
    reach = float(max(semi))
    return np.asarray(centre, dtype=float) - reach, np.asarray(centre, dtype=float) + reach


def tube(coords: Coords, points: Sequence[Sequence[float]], radii: Sequence[float]) -> np.ndarray:
    """Signed distance (mm, negative inside, float32) to a tube along ``points``.

    Args:
        coords: world x, y, z arrays.
        points: ``(m, 3)`` polyline vertices, mm.
        radii: ``(m,)`` radius at each vertex, mm (linear in between).
    """
    points = np.asarray(points, dtype=np.float32)
    radii = np.asarray(radii, dtype=np.float32)
    best = None
    for k in range(len(points) - 1):
        a, axis = points[k], points[k + 1] - points[k]
        length2 = max(float(axis @ axis), 1e-6)
        d = [c - a[n] for n, c in enumerate(coords)]
        t = (d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]) * np.float32(1.0 / length2)
        np.clip(t, 0.0, 1.0, out=t)
        dist2 = (d[0] - t * axis[0]) ** 2
        dist2 += (d[1] - t * axis[1]) ** 2
        dist2 += (d[2] - t * axis[2]) ** 2
        f = np.sqrt(dist2) - (radii[k] + t * (radii[k + 1] - radii[k]))
        best = f if best is None else np.minimum(best, f, out=best)
    return best


def tube_bounds(points: Sequence[Sequence[float]], radii: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """A world box holding the tube."""
    points = np.asarray(points, dtype=float)
    reach = float(np.max(radii))
    return points.min(axis=0) - reach, points.max(axis=0) + reach


class Canvas:
    """The tissue and label maps of one case under construction.

    Args:
        grid: the scan grid (shapes are evaluated on its deformed coordinates).
        fine, coarse: unit random fields, used by shapes that are textured
            themselves (bowel loops, fatty pancreas).
    """

    def __init__(self, grid: ScanGrid, fine: np.ndarray, coarse: np.ndarray):
        self.grid = grid
        self.fine = fine
        self.coarse = coarse
        self.tissue = np.zeros(grid.shape, dtype=np.uint8)
        self.label = np.zeros(grid.shape, dtype=np.uint8)

    def box(self, bounds: Tuple[Sequence[float], Sequence[float]]) -> Box:
        """Array slices of the world box ``bounds = (low, high)``."""
        return self.grid.box(*bounds)

    def coords(self, box: Box) -> Coords:
        """World coordinates inside ``box`` (views)."""
        return self.grid.x[box], self.grid.y[box], self.grid.z[box]

    def paint(self, box: Box, mask: np.ndarray, tissue: int, label: int = 0) -> None:
        """Set ``tissue`` (and ``label``, unless :data:`KEEP`) where ``mask`` is True in ``box``."""
        self.tissue[box][mask] = tissue
        if label != KEEP:
            self.label[box][mask] = label

    def hollow(self, box: Box, distance: np.ndarray, inside: np.ndarray, wall_mm: float,
               tissues: Tuple[int, int, int], gas_y: float, label: int) -> None:
        """Paint a hollow organ: wall, then gas above ``gas_y`` (anterior: the patient is
        supine) and content below. ``tissues`` = ``(wall, content, gas)``."""
        wall, content, gas = tissues
        _, y, _ = self.coords(box)
        self.paint(box, inside, content, label)
        self.paint(box, inside & (y > np.float32(gas_y)), gas, label)
        self.paint(box, inside & (distance > -np.float32(wall_mm)), wall, label)
