"""The scan of one synthetic abdominal CT: its voxel grid, affine and world coordinates.

World coordinates are NIfTI's RAS+ millimetres: +x towards the patient's
**right**, +y anterior, +z superior, so the patient's left is at -x. The
anatomy (:mod:`niftykit.data.abdomen_anatomy`) is defined in this frame and
rendered at each voxel's true position, ``affine @ (i, j, k, 1)``, so the
affine is truthful whatever the storage orientation: an ``L``-stored first axis
(index increasing towards the patient's left, as in DICOM) and an ``R``-stored
one hold the same patient, mirrored in the array and not in the world.

A smooth random displacement (a coarse grid of vectors, cubic B-splines)
deforms the patient: the anatomy at voxel ``v`` is the anatomy of the template
at ``world(v) + d(v)``, so every organ bends a little differently per case.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Sequence, Tuple

import numpy as np

from niftykit.typing import Shape3

__all__ = ["AXCODES", "ScanGrid", "scan_affine", "make_grid", "smooth_field", "controls"]

#: Storage orientations drawn per case (``nibabel.aff2axcodes`` of the written affine).
AXCODES: Tuple[str, ...] = ("LPS", "RAS", "LAS", "LPI")
_DIRECTION = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


def _rotation(yaw_deg: float, tilt_deg: float) -> np.ndarray:
    """Rotation about +z (patient rolled on the table) after one about +x (gantry tilt)."""
    a, b = np.deg2rad(yaw_deg), np.deg2rad(tilt_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    return rz @ rx


def scan_affine(shape: Sequence[int], spacing: Sequence[float], axcodes: str, centre: Sequence[float],
                yaw_deg: float = 0.0, tilt_deg: float = 0.0) -> np.ndarray:
    """The ``(4, 4)`` voxel-to-RAS+ affine of a scan.

    Args:
        shape: ``(x, y, z)`` voxels; axes 0 and 1 are in-plane, axis 2 the slices.
        spacing: voxel size along the three array axes, in mm.
        axcodes: direction each array axis points to, e.g. ``"LPS"``: one of R/L,
            then one of A/P, then one of S/I (``nibabel.aff2axcodes`` returns it,
            the small rotations below being under 45 degrees).
        centre: world position (mm) of the centre of the field of view.
        yaw_deg: rotation of the grid about the patient's long axis.
        tilt_deg: gantry tilt (rotation about the left-right axis).
    """
    columns = np.zeros((3, 3))
    for axis, (code, step) in enumerate(zip(axcodes, spacing)):
        world_axis, sign = _DIRECTION[code]
        columns[world_axis, axis] = sign * float(step)
    matrix = _rotation(yaw_deg, tilt_deg) @ columns
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = np.asarray(centre, dtype=float) - matrix @ ((np.asarray(shape, dtype=float) - 1.0) / 2.0)
    return affine


@dataclass(eq=False)
class ScanGrid:
    """A voxel grid with the (deformed) world position of every voxel.

    Attributes:
        shape: ``(x, y, z)`` voxels.
        affine: ``(4, 4)`` voxel-to-RAS+ mm.
        x, y, z: float32 arrays of ``shape``: where in the template patient each
            voxel lies (true position plus the smooth deformation), mm.
        margin: largest deformation, mm (bounds :meth:`box`).
    """

    shape: Shape3
    affine: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    margin: float

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """Voxel size along the array axes, mm."""
        sizes = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(sizes[0]), float(sizes[1]), float(sizes[2])

    def box(self, low: Sequence[float], high: Sequence[float]) -> Tuple[slice, slice, slice]:
        """Array slices holding every voxel whose template position lies in ``[low, high]`` (mm)."""
        low = np.asarray(low, dtype=float) - self.margin - 1.0
        high = np.asarray(high, dtype=float) + self.margin + 1.0
        corners = np.array([(*corner, 1.0) for corner in product(*zip(low, high))])
        index = (np.linalg.inv(self.affine) @ corners.T)[:3]
        start = np.clip(np.floor(index.min(axis=1)).astype(int), 0, self.shape)
        stop = np.clip(np.ceil(index.max(axis=1)).astype(int) + 1, 0, self.shape)
        return tuple(slice(int(a), int(max(a, b))) for a, b in zip(start, stop))

    def fov_mask(self) -> np.ndarray:
        """``(x, y)`` bool: inside the circular reconstruction field of view of each slice."""
        sx, sy, _ = self.spacing
        i = (np.arange(self.shape[0]) - (self.shape[0] - 1) / 2.0) * sx
        j = (np.arange(self.shape[1]) - (self.shape[1] - 1) / 2.0) * sy
        radius = min(self.shape[0] * sx, self.shape[1] * sy) / 2.0 * 1.06
        return i[:, None] ** 2 + j[None, :] ** 2 <= radius ** 2


def _spline_weights(size: int, controls: int) -> np.ndarray:
    """``(size, controls)`` cubic B-spline weights (rows sum to 1) spreading ``controls``
    evenly over ``size`` samples."""
    position = np.linspace(0.0, controls - 1.0, size)
    d = np.abs(position[:, None] - np.arange(controls)[None, :])
    weights = np.where(d < 1, 2 / 3 - d ** 2 + d ** 3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_field(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Upsample a coarse ``(a, b, c)`` array of control values to a smooth ``shape``
    float32 field (separable cubic B-splines: each value is a convex combination of
    control values, so it stays within their range)."""
    (n0, n1, n2), (c0, c1, _) = shape, values.shape
    w0, w1, w2 = (_spline_weights(n, c) for n, c in zip(shape, values.shape))
    field = values.astype(np.float32) @ w2.T
    field = w1 @ field.transpose(1, 0, 2).reshape(c1, c0 * n2)
    field = field.reshape(n1, c0, n2).transpose(1, 0, 2).reshape(c0, n1 * n2)
    return (w0 @ field).reshape(n0, n1, n2)


def controls(shape: Sequence[int], spacing: Sequence[float], scale_mm: float) -> Tuple[int, int, int]:
    """Number of control values along each axis for features of about ``scale_mm``."""
    a, b, c = (int(max(4, np.ceil(n * s / scale_mm) + 3)) for n, s in zip(shape, spacing))
    return a, b, c


def make_grid(rng: np.random.Generator, shape: Shape3, affine: np.ndarray,
              amplitude: float, wavelength: float) -> ScanGrid:
    """The grid of ``affine`` with a random smooth deformation of about ``amplitude`` mm."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    vectors = rng.normal(0.0, amplitude, (3,) + controls(shape, spacing, wavelength))
    np.clip(vectors, -2.5 * amplitude, 2.5 * amplitude, out=vectors)
    fields = [smooth_field(v, shape) for v in vectors]
    margin = float(np.abs(vectors).max())
    index = [np.arange(n, dtype=np.float32) for n in shape]
    coords = []
    for row in range(3):
        a = affine[row].astype(np.float32)
        coord = (a[0] * index[0])[:, None, None] + (a[1] * index[1])[None, :, None]
        coord = coord + (a[2] * index[2] + a[3])[None, None, :]
        coord += fields[row]
        coords.append(coord)
    return ScanGrid(tuple(int(n) for n in shape), affine, coords[0], coords[1], coords[2], margin)
