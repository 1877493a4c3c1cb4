"""Training-time augmentation of one sample: flips, one composed spatial warp, intensity changes.

A sample is a mapping of volumes ``(x, y, z, channels)`` on one voxel grid, each with its
interpolation order (0 for label maps). Per call, with draws from the caller's
``numpy.random.Generator`` in a fixed sequence (so a seed reproduces a run):

1. **Flip** (NiftyNet ``rand_flip.py``, ``random_flipping_axes``): each listed axis is reversed
   with probability 0.5. Alone it is ``np.flip``; with a warp it joins the coordinate map (a flip
   is affine), so a sample is still resampled once.
2. **Spatial warp**, composed into one coordinate map and one resampling per volume (see
   :mod:`niftykit.io.deform` for the maths), about the volume centre, output grid = input grid:

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
     ``num_ctrl_points`` intervals (``num_ctrl_points + 3`` coefficients) per axis, coefficients
     ``N(0, deformation_sigma^2)`` in **voxels of the image**. That is NiftyNet's unit: it built
     the SimpleITK image from a bare array (spacing 1 mm) and added ``randn * sigma`` to the
     transform parameters, which ITK reads as physical displacements, i.e. voxels of the image, not
     of the control grid. They are spline coefficients, not point displacements: the displacement
     of a voxel has standard deviation 0.31-0.35 sigma in 3-D (0.68-0.71 sigma in 2-D).
   * out-of-volume samples take the nearest edge voxel, for images and labels.
3. **Intensity**, on floating-point volumes with order > 0 only (never on labels), in this order:

   * bias field (``rand_bias_field.py``, ``bias_field_range``, ``bf_order``):
     ``x * exp(sum_{i+j+k <= order} c_ijk u^i v^j w^k)``, ``c_ijk ~ U(min, max)``, with ``u, v, w``
     the voxel coordinates scaled to ``[-1, 1]``; one field per sample for all images.
   * gamma: ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g``, ``g ~ U(gamma_range)``, ``lo, hi``
     the channel's minimum and maximum.
   * noise: ``x + N(0, (r * std(x))^2)`` per voxel, ``r ~ U(noise_std)`` once per sample.

2-D samples (``z == 1``) are rotated about z only and never scaled or deformed along z.
Volumes with a negative order are passed through untouched (NiftyNet's convention).

Speed: a 128^3 float32 image (order 1) with its int32 label (order 0), rotation, scaling and
elastic deformation together (NiftyNet's defaults), takes about 75 ms (median; 120 ms with
``threads=1``) on the project's 2-core machine; TorchIO 1.2.1 ``RandomAffine`` then
``RandomElasticDeformation`` on the same pair took about 1.0 s there. Nearly all of it is the two
``map_coordinates`` calls; the coordinate map costs about 10 ms, the anti-aliasing blur about 5 ms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from niftykit.errors import ConfigError
from niftykit.io.deform import (
    SpatialTransform,
    antialias_sigma,
    blur,
    contract,
    rotation_matrix,
    warp,
)

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
        threads: threads for resampling (default ``min(2, os.cpu_count())``); pass 1 when
            several sampler processes already share the cores.

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
        draw = self._draw(shape)
        if draw.transform is None:
            out = {name: _flip(v, draw.flips if orders[name] >= 0 else ())
                   for name, v in volumes.items()}
        else:
            out = self._warp(volumes, orders, draw)
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

    def _warp(self, volumes: Mapping[str, np.ndarray], orders: Mapping[str, int],
              draw: _Draw) -> dict[str, np.ndarray]:
        """Resample every volume with order >= 0 once; the flips join the map (a flip is affine)."""
        rank = draw.transform.matrix.shape[0]
        signs = np.array([-1.0 if axis in draw.flips else 1.0 for axis in range(rank)])
        transform = SpatialTransform(signs[:, None] * draw.transform.matrix,
                                     draw.transform.coefficients)
        sigma = antialias_sigma(draw.zoom[:rank]) if self.antialiasing else np.zeros(rank)
        out, sources = {}, []
        for name, volume in volumes.items():
            out[name] = np.empty_like(volume, order="C")
            if orders[name] < 0:
                out[name][...] = volume
                continue
            for c in range(volume.shape[-1]):
                source, target = _spatial(volume, c, rank), _spatial(out[name], c, rank)
                if orders[name] > 0 and sigma.any():
                    source = blur(source, sigma)
                sources.append((source, orders[name], target))
        if sources:
            warp(sources, transform, self.threads)
        return out

    def _intensity(self, images: list[np.ndarray], draw: _Draw) -> None:
        """Bias field, gamma and noise, in place, on floating-point image volumes."""
        if draw.bias is not None:
            field = _bias_field(draw.bias, images[0].shape[:3])[..., None]
            for volume in images:
                volume *= field
        for volume in images:
            for c in range(volume.shape[-1]):
                channel = volume[..., c]
                if draw.gamma is not None:
                    _gamma(channel, draw.gamma)
                if draw.noise is not None:
                    std = draw.noise * float(channel.std())
                    noise = self.rng.standard_normal(channel.shape, dtype=np.float32)
                    channel += std * noise


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


def _flip(volume: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous copy of ``volume`` reversed along ``axes``."""
    flipped = np.flip(volume, axes) if axes else volume
    return np.array(flipped, order="C", copy=True)


def _spatial(volume: np.ndarray, channel: int, rank: int) -> np.ndarray:
    """Channel ``channel`` as an ``(x, y, z)`` view, or ``(x, y)`` for a 2-D sample."""
    return volume[:, :, 0, channel] if rank == 2 else volume[..., channel]


def _bias_field(coefficients: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``exp`` of the polynomial of total degree ``order`` with the given coefficients.

    Args:
        coefficients: ``(order + 1,) * 3`` array; terms with ``i + j + k > order`` are ignored.
        shape: ``(x, y, z)``; coordinates run over ``[-1, 1]`` (a single slice sits at 0).

    Returns:
        ``(x, y, z)`` float32 multiplicative field.
    """
    order = coefficients.shape[0] - 1
    degree = np.add.outer(np.add.outer(np.arange(order + 1), np.arange(order + 1)), np.arange(order + 1))
    field = np.where(degree <= order, coefficients, 0.0)
    for axis, size in enumerate(shape):
        coordinate = np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
        field = contract(coordinate[:, None] ** np.arange(order + 1)[None, :], field, axis)
    return np.exp(field).astype(np.float32)


def _gamma(channel: np.ndarray, gamma: float) -> None:
    """``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** gamma`` in place; constant channels stay."""
    lo, hi = float(channel.min()), float(channel.max())
    if hi > lo:
        scaled = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
        channel[...] = lo + (hi - lo) * scaled**gamma
