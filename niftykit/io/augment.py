"""Training-time augmentation of one sample, or of one window of it: flips, one warp, intensity.

A sample is a mapping of volumes ``(x, y, z, channels)`` on one voxel grid, each with its
interpolation order (0 for label maps). :meth:`Augmenter.__call__` augments the whole grid;
:meth:`Augmenter.window` augments only a box ``[lo, hi)`` of it (a training window), with the same
transforms about the window's centre, evaluated on the window's voxels alone and resampled once
from the full volume, so a 64^3 window of a 256x256x128 volume costs what a 64^3 volume would.
Per call, with draws from the caller's ``numpy.random.Generator`` in a fixed sequence (so a seed
reproduces a run):

1. **Flip** (NiftyNet ``rand_flip.py``, ``random_flipping_axes``): each listed axis is reversed
   with probability 0.5. Alone it is ``np.flip``; with a warp it joins the coordinate map (a flip
   is affine), so a sample is still resampled once.
2. **Spatial warp**, composed into one coordinate map ``x(y) = w + A (y + d(y) - c)`` from output
   voxel ``y`` to input voxel ``x`` and one resampling per volume (:mod:`niftykit.io.deform` for
   the maths, :mod:`niftykit.io.warp` for the resampling). The output grid is the volume, or the
   window; ``c`` is its centre and ``w`` the point it lands on (the volume's or the window's
   centre), so without a transform a window is exactly its crop:

   * scaling (``rand_spatial_scaling.py``, ``scaling_percentage``): zoom
     ``s = (100 + U(min, max)) / 100`` per axis (one draw for all axes if ``isotropic_scaling``);
     ``s > 1`` magnifies the content. With ``antialiasing``, images (order > 0) are first blurred
     along every axis with ``s < 1`` by the Gaussian of Cardoso et al., MICCAI 2015 (NiftyNet blurred
     only when all three axes shrank; per axis is the same formula applied where it is needed).
   * rotation (``rand_rotation.py``, ``rotation_angle`` or ``rotation_angle_x/_y/_z``): angles
     ``U(min, max)`` degrees about the x, y and z voxel axes, ``R = R_z R_y R_x``. NiftyNet's
     matrix called its (x, y)-plane turn ``angle_x``; here ``rotation_x`` turns about x, as named.
   * elastic (``rand_elastic_deform.py``, ``do_elastic_deformation``): with probability
     ``proportion_to_deform``, a cubic B-spline displacement on SimpleITK's grid of
     ``num_ctrl_points`` intervals (``num_ctrl_points + 3`` coefficients) per axis across the
     output grid (for a window: across the window, a finer grid than the volume's), coefficients
     ``N(0, deformation_sigma^2)`` in **voxels of the image**. That is NiftyNet's unit: it built
     the SimpleITK image from a bare array (spacing 1 mm) and added ``randn * sigma`` to the
     transform parameters, which ITK reads as physical displacements, i.e. voxels of the image, not
     of the control grid. They are spline coefficients, not point displacements: the displacement
     of a voxel has standard deviation 0.31-0.35 sigma in 3-D (0.68-0.71 sigma in 2-D).
   * out-of-volume samples take the nearest edge voxel, for images and labels (a window may
     reach outside the volume; it is then edge-padded, as a crop would be).
3. **Intensity** (:mod:`niftykit.io.intensity_augment`), on floating-point volumes with
   order > 0 only (never on labels), in this order:

   * bias field (``rand_bias_field.py``, ``bias_field_range``, ``bf_order``):
     ``x * exp(sum_{i+j+k <= order} c_ijk u^i v^j w^k)``, ``c_ijk ~ U(min, max)``, with ``u, v, w``
     the output grid's voxel coordinates (the window's) scaled to ``[-1, 1]``; one field per sample
     for all images.
   * gamma: ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g``, ``g ~ U(gamma_range)``, ``lo, hi``
     the channel's minimum and maximum (over the output: the window).
   * noise: ``x + N(0, (r * std(x))^2)`` per voxel, ``r ~ U(noise_std)`` once per sample.

2-D samples and windows (``z == 1``) are rotated about z only and never scaled or deformed along
z. Volumes with a negative order are passed through untouched (for a window: cropped), NiftyNet's
convention.

Speed on the project's 2-core VM (CPU time per call, medians, measured while other jobs kept both
cores busy): one 64^3 window of a 256x256x128 volume, a float32 image (order 1) with its int32 label
(order 0), rotation, scaling and elastic deformation together, takes about 5 ms on one thread
(4.8 ms without anti-aliasing, 9 ms adding flips, bias field, gamma and noise, 4 ms for flips,
rotation and scaling alone, 0.15 ms for a plain crop). The same pair as a cropped 64^3 patch took
about 240 ms through TorchIO 1.2.1 ``RandomAffine`` then ``RandomElasticDeformation``, and 190 ms
through MONAI 1.6 ``Rand3DElasticd`` (one torch thread). A whole 128^3 volume takes about 35 ms, a
whole 256x256x128 volume about 130 ms. The returned windows are 64-byte aligned, recycled memory
(:meth:`~niftykit.io.warp.Workspace.result`): ``tf.data`` takes them without a copy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from niftykit.errors import ConfigError
from niftykit.io.deform import SpatialTransform, antialias_sigma, rotation_matrix
from niftykit.io.intensity_augment import add_noise, bias_field, gamma_transform
from niftykit.io.warp import Workspace, crop, warp

__all__ = ["Augmenter"]

Range = Sequence[float]


@dataclass
class _Draw:
    """The random choices of one sample."""

    flips: tuple[int, ...]
    transform: SpatialTransform | None
    zoom: np.ndarray
    bias: np.ndarray | None
    gamma: float | None
    noise: float | None


def _range(value: Range | None, key: str, low: float = -np.inf,
           strict: bool = False) -> tuple[float, float] | None:
    """Validate an optional ``(min, max)`` pair, ``min >= low`` (``> low`` if ``strict``)."""
    if value is None:
        return None
    pair = tuple(float(v) for v in np.ravel(value))
    above = len(pair) == 2 and (pair[0] > low if strict else pair[0] >= low)
    if not (above and pair[0] <= pair[1] < np.inf):
        bound = f"{low} {'<' if strict else '<='} min <= max"
        raise ConfigError(f"{key} must be a (min, max) pair with {bound}, got {value!r}")
    return pair


class Augmenter:
    """Random flips, scaling, rotation, elastic deformation, bias field, gamma and noise.

    Call it on a whole sample, or use :meth:`window` for one training window of it. Scratch
    memory is kept between calls, one :class:`~niftykit.io.warp.Workspace` per calling thread.

    Args:
        rng: the source of every random draw (seed it for reproducible runs).
        flip_axes: axes (0, 1, 2) each reversed with probability 0.5 (``random_flipping_axes``;
            NiftyNet's ``-1`` entries mean off and are ignored).
        rotation: ``(min, max)`` degrees for all three axes (``rotation_angle``).
        rotation_x: ``(min, max)`` degrees about x (``rotation_angle_x``); overrides ``rotation``.
        rotation_y: the same about y.
        rotation_z: the same about z (the only rotation of 2-D samples).
        scaling: ``(min, max)`` percent, zoom ``(100 + U(min, max)) / 100`` (``scaling_percentage``).
        isotropic_scaling: one zoom for all axes.
        antialiasing: Gaussian pre-blur of images along axes that shrink (Cardoso et al. 2015).
        elastic: B-spline elastic deformation (``do_elastic_deformation``).
        num_ctrl_points: B-spline intervals per axis (raised to 2 if lower, as NiftyNet did).
        deformation_sigma: std of the B-spline coefficients, in image voxels.
        proportion_to_deform: probability that a sample is deformed.
        bias_field_range: ``(min, max)`` of the polynomial bias field coefficients.
        bf_order: total degree of the bias field polynomial.
        gamma_range: ``(min, max)`` of the gamma exponent, e.g. ``(0.7, 1.5)``.
        noise_std: ``(min, max)`` std of additive Gaussian noise, relative to the channel's std.
        threads: at most this many resampling threads (default ``min(2, os.cpu_count())``), one
            per 2^18 output voxels: a 64^3 window or smaller runs on the calling thread. Pass 1
            when several sampler processes already share the cores.

    Raises:
        ConfigError: a range is not ``(min, max)`` or a value is out of bounds.
    """

    def __init__(self, *, rng: np.random.Generator, flip_axes: Sequence[int] = (),
                 rotation: Range | None = None, rotation_x: Range | None = None,
                 rotation_y: Range | None = None, rotation_z: Range | None = None,
                 scaling: Range | None = None, isotropic_scaling: bool = False,
                 antialiasing: bool = True, elastic: bool = False, num_ctrl_points: int = 4,
                 deformation_sigma: float = 15.0, proportion_to_deform: float = 0.5,
                 bias_field_range: Range | None = None, bf_order: int = 3,
                 gamma_range: Range | None = None, noise_std: Range | None = None,
                 threads: int | None = None) -> None:
        self.rng = rng
        self.flip_axes = _flip_axes(flip_axes)
        base = _range(rotation, "rotation_angle")
        per_axis = {"x": rotation_x, "y": rotation_y, "z": rotation_z}
        self.rotation = tuple(base if v is None else _range(v, f"rotation_angle_{k}")
                              for k, v in per_axis.items())
        self.scaling = _range(scaling, "scaling_percentage", low=-100.0, strict=True)
        self.isotropic_scaling = bool(isotropic_scaling)
        self.antialiasing = bool(antialiasing)
        self.elastic = bool(elastic)
        self.num_ctrl_points = max(int(num_ctrl_points), 2)
        self.deformation_sigma = _non_negative(deformation_sigma, "deformation_sigma")
        self.proportion_to_deform = _non_negative(proportion_to_deform, "proportion_to_deform", 1.0)
        self.bias_field_range = _range(bias_field_range, "bias_field_range")
        self.bf_order = int(_non_negative(bf_order, "bf_order"))
        self.gamma_range = _range(gamma_range, "gamma_range", low=0.0, strict=True)
        self.noise_std = _range(noise_std, "noise_std", low=0.0)
        self.threads = int(threads) if threads else min(2, os.cpu_count() or 1)
        self._workspaces: dict[int, Workspace] = {}

    def __getstate__(self) -> dict:
        """Pickle the settings and ``rng``, not the scratch memory."""
        return {**self.__dict__, "_workspaces": {}}

    def _scratch(self) -> Workspace:
        """The calling thread's scratch memory."""
        workspace = self._workspaces.get(threading.get_ident())
        if workspace is None:
            workspace = self._workspaces[threading.get_ident()] = Workspace()
        return workspace

    @property
    def active(self) -> bool:
        """False when every setting is off (the caller can skip the augmenter)."""
        return self._spatial or bool(self.flip_axes) or any(
            r is not None for r in (self.bias_field_range, self.gamma_range, self.noise_std))

    @property
    def _spatial(self) -> bool:
        deform = self.elastic and self.proportion_to_deform > 0
        return deform or self.scaling is not None or any(r is not None for r in self.rotation)

    def __call__(self, volumes: Mapping[str, np.ndarray],
                 orders: Mapping[str, int]) -> dict[str, np.ndarray]:
        """Augment one sample.

        Args:
            volumes: name to ``(x, y, z, channels)`` array, all on the same spatial grid.
            orders: name to spline interpolation order (0 for label maps, 1 or 3 for images;
                negative: leave the volume untouched).

        Returns:
            New C-contiguous arrays, same names, shapes and dtypes as ``volumes``.

        Raises:
            ValueError: the volumes are not 4-D on one grid, or an order is missing.
        """
        shape = _check(volumes, orders)
        return self._augment(volumes, orders, np.zeros(3, dtype=int), np.asarray(shape))

    def window(self, volumes: Mapping[str, np.ndarray], orders: Mapping[str, int],
               location: Sequence[int]) -> dict[str, np.ndarray]:
        """Augment one window of a sample, resampling only the window's voxels.

        One draw of every transform, as :meth:`__call__` makes for a whole volume, but about the
        window's centre and on the window's grid: the composed map is built for the window's
        voxels and each volume is sampled once from the full volume (no crop, then warp), edge
        voxels repeated outside it. The elastic control grid spans the window
        (``num_ctrl_points`` intervals across the window, ``deformation_sigma`` still in
        voxels), and the bias field and the gamma and noise statistics are the window's.
        Without a spatial transform the window is the exact crop (flipped if drawn).

        Args:
            volumes: name to full ``(x, y, z, channels)`` array, all on one spatial grid.
            orders: name to spline order, as for :meth:`__call__` (negative: plain crop).
            location: ``[x0, y0, z0, x1, y1, z1]`` voxel box, ``x1 > x0`` etc.; it may reach
                outside the volume. A box with ``z1 - z0 == 1`` is a 2-D window.

        Returns:
            Name to C-contiguous ``(x1 - x0, y1 - y0, z1 - z0, channels)`` window of the
            volume's dtype, and ``"location"``: the box as an int32 ``(6,)`` array.

        Raises:
            ValueError: the volumes are not 4-D on one grid, an order is missing, or the box
                is not 6 integers with ``lo < hi``.
        """
        _check(volumes, orders)
        lo, hi = _box(location)
        out = self._augment(volumes, orders, lo, hi)
        out["location"] = np.concatenate([lo, hi]).astype(np.int32)
        return out

    def _augment(self, volumes: Mapping[str, np.ndarray], orders: Mapping[str, int],
                 lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
        """Augment the box ``[lo, hi)`` of checked volumes (the whole grid for ``__call__``)."""
        draw = self._draw(hi - lo)
        if draw.transform is None:
            out = {name: _flip(crop(v, lo, hi), draw.flips if orders[name] >= 0 else ())
                   for name, v in volumes.items()}
        else:
            out = self._warp(volumes, orders, draw, lo, hi)
        images = [v for name, v in out.items() if orders[name] > 0 and v.dtype.kind == "f"]
        if images:
            self._intensity(images, draw)
        return out

    def _draw(self, shape: Sequence[int]) -> _Draw:
        """Every random choice of one sample, in a fixed order."""
        rng, rank = self.rng, 2 if shape[2] == 1 else 3
        flips = tuple(a for a in self.flip_axes if rng.random() < 0.5)
        angles = [rng.uniform(*r) if r is not None else 0.0 for r in self.rotation]
        zoom = np.ones(3)
        if self.scaling is not None:
            percent = rng.uniform(*self.scaling, size=1 if self.isotropic_scaling else 3)
            zoom[:] = (100.0 + percent) / 100.0
        coefficients = None
        if self.elastic and rng.random() < self.proportion_to_deform:
            grid = (rank,) + (self.num_ctrl_points + 3,) * rank
            coefficients = rng.normal(0.0, self.deformation_sigma, size=grid)
        if rank == 2:
            angles[:2], zoom[2] = [0.0, 0.0], 1.0
        matrix = (np.diag(1.0 / zoom) @ rotation_matrix(angles).T)[:rank, :rank]
        identity = coefficients is None and np.array_equal(matrix, np.eye(rank))
        transform = None if identity else SpatialTransform(matrix, coefficients)
        bias = None
        if self.bias_field_range is not None:
            bias = rng.uniform(*self.bias_field_range, size=(self.bf_order + 1,) * 3)
        gamma = rng.uniform(*self.gamma_range) if self.gamma_range is not None else None
        noise = rng.uniform(*self.noise_std) if self.noise_std is not None else None
        return _Draw(flips, transform, zoom, bias, gamma, noise)

    def _warp(self, volumes: Mapping[str, np.ndarray], orders: Mapping[str, int], draw: _Draw,
              lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
        """Resample every volume with order >= 0 once; the flips join the map (a flip is affine)."""
        rank = draw.transform.matrix.shape[0]
        signs = np.array([-1.0 if axis in draw.flips else 1.0 for axis in range(rank)])
        centre = (lo + hi - 1.0)[:rank] / 2.0
        transform = SpatialTransform(signs[:, None] * draw.transform.matrix,
                                     draw.transform.coefficients, centre)
        sigma = antialias_sigma(draw.zoom[:rank]) if self.antialiasing else None
        out, sources, scratch = {}, [], self._scratch()
        for name, volume in volumes.items():
            if orders[name] < 0:
                out[name] = crop(volume, lo, hi)
                continue
            out[name] = scratch.result((*(hi - lo), volume.shape[-1]), volume.dtype)
            sources.append((_spatial(volume, rank, lo[2]), orders[name], _spatial(out[name], rank)))
        if sources:
            warp(sources, transform, self.threads, sigma, scratch)
        return out

    def _intensity(self, images: list[np.ndarray], draw: _Draw) -> None:
        """Bias field, gamma and noise, in place, on floating-point image volumes."""
        if draw.bias is not None:
            field = bias_field(draw.bias, images[0].shape[:3])[..., None]
            for volume in images:
                volume *= field
        for volume in images:
            for c in range(volume.shape[-1]):
                channel = volume[..., c]
                if draw.gamma is not None:
                    gamma_transform(channel, draw.gamma)
                if draw.noise is not None:
                    scratch = self._scratch().array("noise", channel.shape, np.float32)
                    add_noise(channel, draw.noise, self.rng, scratch)


def _flip_axes(axes: Sequence[int]) -> tuple[int, ...]:
    """Validate ``random_flipping_axes``; ``-1`` entries (NiftyNet's "off") are dropped."""
    kept = sorted({int(a) for a in np.ravel(axes) if int(a) != -1})
    if any(a not in (0, 1, 2) for a in kept):
        raise ConfigError(f"random_flipping_axes must list axes 0, 1 or 2 (or -1 for none), got {axes!r}")
    return tuple(kept)


def _non_negative(value: float, key: str, high: float = np.inf) -> float:
    """Validate ``0 <= value <= high``."""
    number = float(value)
    if not 0.0 <= number <= high:
        raise ConfigError(f"{key} must be between 0 and {high}, got {value!r}")
    return number


def _check(volumes: Mapping[str, np.ndarray], orders: Mapping[str, int]) -> tuple[int, int, int]:
    """The common spatial shape of ``volumes``; raises ValueError if they disagree."""
    if not volumes:
        raise ValueError("Augmenter: no volumes to augment")
    shapes = {name: np.shape(v) for name, v in volumes.items()}
    if any(len(s) != 4 for s in shapes.values()):
        raise ValueError(f"Augmenter: volumes must be (x, y, z, channels), got shapes {shapes}")
    if len({s[:3] for s in shapes.values()}) != 1:
        raise ValueError(f"Augmenter: volumes must share one spatial shape, got {shapes}")
    missing = sorted(set(volumes) - set(orders))
    if missing or any(int(orders[n]) > 5 for n in volumes):
        raise ValueError(f"Augmenter: need an order <= 5 for every volume; missing {missing}, "
                         f"got {dict(orders)}")
    return next(iter(shapes.values()))[:3]


def _box(location: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` of a ``[x0, y0, z0, x1, y1, z1]`` window box; raises ValueError if malformed."""
    box = np.asarray(location)
    if box.shape != (6,) or box.dtype.kind not in "iu" or not np.all(box[:3] < box[3:]):
        raise ValueError(f"Augmenter.window: location must be 6 integers [x0, y0, z0, x1, y1, z1] "
                         f"with x0 < x1, y0 < y1, z0 < z1, got {location!r}")
    return box[:3].astype(int), box[3:].astype(int)


def _flip(volume: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``volume`` (a new array) reversed along ``axes``, C-contiguous."""
    return np.ascontiguousarray(np.flip(volume, axes)) if axes else volume


def _spatial(volume: np.ndarray, rank: int, z: int = 0) -> np.ndarray:
    """``(x, y, z, channels)``, or slice ``z`` (clipped into the volume) as ``(x, y, channels)``."""
    return volume[:, :, min(max(z, 0), volume.shape[2] - 1)] if rank == 2 else volume
