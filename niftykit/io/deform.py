"""One composed coordinate map per sample: scaling, rotation and a B-spline deformation.

The augmentation of :mod:`niftykit.io.augment` resamples every volume of a sample **once**
(:mod:`niftykit.io.warp`), through one map from output voxel ``y`` to input voxel ``x``, both in
voxel-index units::

    x(y) = w + A (y + d(y) - c),        A = S^-1 R^T

with ``c = (n - 1) / 2`` the centre of the output grid and ``w`` the input point it lands on: the
volume centre when the output grid is the whole volume, the window centre ``(lo + hi - 1) / 2``
when it is a training window ``[lo, hi)`` of a larger volume (so a window is transformed about its
own centre, and with ``A = I, d = 0`` it is exactly the crop). This is NiftyNet's chain "scaling,
then rotation, then elastic deformation" written backwards (``S = diag(zoom)`` magnifies the
content about ``w``, ``R`` rotates it, ``d`` is the elastic displacement in output voxels).
Chaining three resamplings would blur the image three times and cost three times; composing them
costs one interpolation per voxel.

**B-spline field.** ``d`` is a cubic B-spline transform as SimpleITK builds it in NiftyNet's
``rand_elastic_deform.py`` (``sitk.BSplineTransformInitializer(image, [m] * rank)``), laid on the
output grid (the whole image, or the window: ``m`` intervals across the window, so a small window
is deformed on a finer grid than its volume would be): the transform domain is the grid's extent
plus ITK's 1/8-voxel margin, voxel index ``-0.625`` to ``n - 0.375``, cut into ``m`` intervals of
``h = (n + 0.25) / m`` voxels, carrying ``m + 3`` coefficients per axis (control point ``k`` at
``-0.625 + (k - 1) h``), so that along one axis ``d(y) = sum_k c_k beta3((y + 0.625) / h + 1 - k)``
(checked against SimpleITK 2.5 to 1e-6 voxel).
The field is a tensor product, evaluated exactly and separably (one small matrix product per
output slab) rather than by zooming a coarse grid.

**Every map is a low-rank product.** The affine part is linear in ``y`` and the B-spline weights
along x sum to one, so coordinate ``a`` of the map for an x-slab is ``B_x[slab] @ T_a`` with
``B_x = [beta3 weights | y_x]`` of shape ``(n_x, m + 4)`` and ``T_a`` of shape
``(m + 4, n_y, n_z)`` built once per sample; a float32 slab costs one small product. The same
factors bound the map cheaply (weights are non-negative): :mod:`niftykit.io.warp` reads only the
block of the input that a window's map can reach.

**Anti-aliasing.** Where the content is shrunk (zoom ``s < 1`` along an axis), images are blurred
first with the Gaussian of Cardoso et al., "Scale factor point spread function matching: beyond
aliasing in image resampling", MICCAI 2015 (as NiftyNet's ``rand_spatial_scaling.py``):
``sigma = sqrt(1 / s^2 - 1) / (2 sqrt(2 ln 2))`` input voxels (:func:`niftykit.io.warp.blur`).

Outside the volume, samples take the nearest edge voxel (scipy's ``mode="nearest"``), for images
and labels alike: no artificial zero border that a label would not share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SpatialTransform",
    "antialias_sigma",
    "bspline_basis",
    "contract",
    "rotation_matrix",
]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: ITK widens the B-spline domain by 1/8 voxel on each side (itkBSplineTransformInitializer.hxx).
_DOMAIN_EPSILON = 0.125


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation ``R = R_z R_y R_x`` in voxel-index space (right-hand rule about each axis).

    Args:
        angles: ``(x, y, z)`` angles in degrees; the content turns about x first, z last.

    Returns:
        ``(3, 3)`` float64 rotation matrix acting on ``(x, y, z)`` column vectors.
    """
    ax, ay, az = np.deg2rad(np.asarray(angles, dtype=np.float64))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    r_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    r_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return r_z @ r_y @ r_x


def _beta3(t: np.ndarray) -> np.ndarray:
    """Centred cubic B-spline kernel."""
    t = np.abs(t)
    inner = 2.0 / 3.0 - t**2 + 0.5 * t**3
    outer = np.clip(2.0 - t, 0.0, None) ** 3 / 6.0
    return np.where(t < 1.0, inner, outer)


def bspline_basis(size: int, mesh: int) -> np.ndarray:
    """Cubic B-spline weights of SimpleITK's ``BSplineTransformInitializer`` grid along one axis.

    Args:
        size: voxels along the axis.
        mesh: intervals across the image extent (NiftyNet's ``num_ctrl_points``).

    Returns:
        ``(size, mesh + 3)`` float64 weights; each row sums to one.
    """
    extent = size + 2.0 * _DOMAIN_EPSILON
    u = (np.arange(size) + 0.5 + _DOMAIN_EPSILON) * (mesh / extent) + 1.0
    return _beta3(u[:, None] - np.arange(mesh + 3)[None, :])


def antialias_sigma(zoom: np.ndarray) -> np.ndarray:
    """Gaussian sigma (input voxels) before shrinking by ``zoom`` (Cardoso et al., MICCAI 2015).

    Args:
        zoom: per-axis zoom factors; axes with ``zoom >= 1`` get 0 (no blur).

    Returns:
        Per-axis sigma, same shape as ``zoom``.
    """
    zoom = np.asarray(zoom, dtype=np.float64)
    shrink = np.clip(1.0 / zoom**2 - 1.0, 0.0, None)
    return np.sqrt(shrink) / _FWHM_PER_SIGMA


@dataclass(frozen=True)
class SpatialTransform:
    """A composed map from output to input voxels (see the module docstring).

    Attributes:
        matrix: ``(rank, rank)`` linear part ``A = S^-1 R^T``, output to input voxels.
        coefficients: ``(rank, m + 3, ...)`` B-spline displacement coefficients in output voxels
            (``rank`` grids of ``m + 3`` per axis), or ``None`` without elastic deformation.
        centre: ``(rank,)`` input voxel ``w`` that the output grid's centre maps to (a window's
            centre in its volume), or ``None`` for the output grid's own centre.
    """

    matrix: np.ndarray
    coefficients: np.ndarray | None = None
    centre: np.ndarray | None = None

    def factors(self, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The low-rank factors of the map on a grid of ``shape``.

        Args:
            shape: spatial shape ``(x, y[, z])``, ``len(shape) == rank``.

        Returns:
            ``basis_x`` of shape ``(n_x, p)`` and ``tensor`` of shape ``(rank, p, *shape[1:])``, both
            float32, such that coordinate ``a`` of the map is ``basis_x @ tensor[a]``.
        """
        rank = len(shape)
        centre = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
        grids = [np.arange(n, dtype=np.float64) for n in shape]
        target = centre if self.centre is None else np.asarray(self.centre, dtype=np.float64)
        offset = target - self.matrix @ centre
        rest = np.zeros((rank, *shape[1:]))
        for a in range(rank):
            rest[a] += offset[a]
            for b in range(1, rank):
                rest[a] += _along(self.matrix[a, b] * grids[b], b - 1, rank - 1)
        if self.coefficients is None:
            basis, smooth = np.ones((shape[0], 1)), rest[:, None]
        else:
            basis = bspline_basis(shape[0], self.coefficients.shape[1] - 3)
            smooth = self._displacement_tensor(shape) + rest[:, None]
        basis_x = np.concatenate([basis, grids[0][:, None]], axis=1)
        column = np.broadcast_to(self.matrix[:, 0].reshape(rank, 1, *[1] * (rank - 1)),
                                 (rank, 1, *shape[1:]))
        tensor = np.concatenate([smooth, column], axis=1)
        return basis_x.astype(np.float32), np.ascontiguousarray(tensor, dtype=np.float32)

    def _displacement_tensor(self, shape: Sequence[int]) -> np.ndarray:
        """``A d`` contracted along every axis but x: ``(rank, m + 3, *shape[1:])``."""
        coeffs = contract(self.matrix, self.coefficients, 0)
        mesh = coeffs.shape[1] - 3
        for axis in range(1, len(shape)):
            coeffs = contract(bspline_basis(shape[axis], mesh), coeffs, axis + 1)
        return coeffs


def contract(matrix: np.ndarray, tensor: np.ndarray, axis: int) -> np.ndarray:
    """``matrix @ tensor`` along ``axis``: ``(n, p)`` with ``tensor.shape[axis] == p`` -> ``n``.

    ``np.einsum`` without ``optimize`` never calls BLAS: OpenBLAS wakes its own threads for
    products this size, and on a loaded machine (a training step beside the sampler) a call then
    stalled for 40-60 ms instead of taking 1 ms.
    """
    index = list(range(tensor.ndim))
    result = index.copy()
    result[axis] = tensor.ndim
    return np.einsum(matrix, [tensor.ndim, axis], tensor, index, result)


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """Reshape a 1-D array to broadcast along ``axis`` of an ``ndim``-D array."""
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)
