"""Fully connected 3-D conditional random field (CRF) on segmentation probabilities.

Kamnitsas et al., "Efficient multi-scale 3D CNN with fully connected CRF for
accurate brain lesion segmentation", Medical Image Analysis 36, 2017 (DeepMedic's
post-processing, released as ``github.com/deepmedic/dense3dCrf``), after
Krähenbühl and Koltun, "Efficient inference in fully connected CRFs with
Gaussian edge potentials", NIPS 2011. It follows any segmentation network.

Energy over labels ``x`` of all voxels, with the network's probabilities ``P``:

    E(x) = Σ_i −log P_i(x_i) + Σ_{i<j} μ(x_i, x_j) k(i, j)
    k(i, j) = w_app · exp(−|p_i − p_j|² / 2θ_α² − Σ_m (I_im − I_jm)² / 2θ_β,m²)
            + w_smooth · exp(−|p_i − p_j|² / 2θ_γ²)

``p`` are voxel centres in mm (anisotropic spacing; a θ may differ per axis),
``I`` the intensities of every image channel (multi-modal allowed), ``μ``
Potts (``[x_i ≠ x_j]``) or any symmetric ``(C, C)`` compatibility. Mean-field
inference (Krähenbühl and Koltun's algorithm 1) updates ``Q`` ``iterations``
times from ``Q = P``:

    m_i^k(l) = Σ_j k^k(i, j) Q_j(l) / Σ_j k^k(i, j)                (j over all voxels)
    Q_i(l) ∝ exp( log P_i(l) − Σ_k w_k Σ_l' μ(l, l') m_i^k(l') )

The messages are normalised per voxel and include ``j = i``, as
Krähenbühl and Koltun's released ``densecrf`` (``per_pixel_normalization``, the
default) and so DeepMedic's 3-D CRF compute them: the weights are then the
weights of a neighbourhood average, independent of the voxel size (an
unnormalised 3 mm Gaussian sums to about 420 at 1 mm spacing). With Potts the
update is ``Q ∝ P · exp(w_app m^app + w_smooth m^smooth)``.

* smoothness kernel: a separable Gaussian filter in mm
  (``scipy.ndimage.gaussian_filter``, σ in voxels = θ_γ / spacing, zero outside
  the volume and normalised by the filtered ones, which is separable, truncated
  at 4 σ: exact to about 3e-4);
* appearance (bilateral) kernel: the permutohedral lattice of
  :mod:`niftykit.postprocess.lattice` over ``(p / θ_α, I / θ_β)``, the filter
  of ``densecrf`` and of DeepMedic's CRF; linear in voxels.

Defaults are those built into DeepMedic's ``dense3dCrf`` (``ParametersOfRun``):
5 iterations, w_smooth 3 with θ_γ 3, w_app 5 with θ_α 5, and an intensity σ of 3
on its 0–255 scale over the intensity range it is given; its example
(``applicationAndExamples``, z-scored MR in [−3.1, 3.1]) used θ_α 17, 12, 10
and intensity σ 4.5 and 3.5 for two channels, with 2 iterations. Its positions
are voxels of 1 mm data, so θ in voxels there is θ in mm here; the intensity σ
3 / 255 × 6.2 ≈ 0.07 in z-score units.

Memory for ``N`` voxels and ``C`` classes: ``Q`` and one message array
(``N·C·4`` bytes each), the lattice (about ``8·(d + 1)·N`` bytes, ``d = 3 +``
intensity channels) and a few ``N·4``-byte buffers; the input probabilities are
read, not copied. Measured on this project's 2-core machine (one core used): a
512 × 512 × 200 volume with 9 classes held 6.5 GB besides its 1.9 GB of input
probabilities (lattice built in 32 s, 29 s an iteration); 256 × 256 × 128 × 9,
4 s to build the lattice and 3.5–4.5 s an iteration (about 60 % of it the
smoothness filter).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from niftykit.postprocess.lattice import PermutohedralLattice

__all__ = ["DenseCRF"]

log = logging.getLogger("niftykit")

Sigma = float | Sequence[float]

#: Probabilities are clamped to at least this before the logarithm (no −inf unaries).
MIN_PROBABILITY = 1e-8
_CHUNK = 1 << 19


def _per_axis(value: Sigma, n: int, name: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(value, np.float64))
    if values.size == 1:
        values = np.repeat(values, n)
    if values.shape != (n,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be one positive number or {n} of them, got {value!r}")
    return values


class DenseCRF:
    """Mean-field inference in a fully connected 3-D CRF with Gaussian kernels.

    Args:
        iterations: mean-field updates (0 returns the normalised input).
        smooth_weight: ``w_smooth``, weight of the position-only kernel (0: off).
        smooth_sigma_mm: ``θ_γ`` in mm, one value or ``(x, y, z)``.
        appearance_weight: ``w_app``, weight of the position-and-intensity
            kernel (0: off).
        appearance_sigma_mm: ``θ_α`` in mm, one value or ``(x, y, z)``.
        appearance_sigma_intensity: ``θ_β`` in the image's intensity units, one
            value or one per image channel.
        compatibility: ``(C, C)`` symmetric label compatibility ``μ``; None for
            Potts (``1 − identity``).

    Raises:
        ValueError: a negative weight or iteration count, or a non-positive σ.
    """

    def __init__(self, iterations: int = 5, smooth_weight: float = 3.0,
                 smooth_sigma_mm: Sigma = 3.0, appearance_weight: float = 5.0,
                 appearance_sigma_mm: Sigma = 5.0, appearance_sigma_intensity: Sigma = 0.07,
                 compatibility: np.ndarray | None = None) -> None:
        if int(iterations) < 0 or smooth_weight < 0 or appearance_weight < 0:
            raise ValueError("iterations and weights must be >= 0, got "
                             f"{iterations}, {smooth_weight}, {appearance_weight}")
        self.iterations = int(iterations)
        self.smooth_weight, self.appearance_weight = float(smooth_weight), float(appearance_weight)
        self.smooth_sigma_mm = _per_axis(smooth_sigma_mm, 3, "smooth_sigma_mm")
        self.appearance_sigma_mm = _per_axis(appearance_sigma_mm, 3, "appearance_sigma_mm")
        self.appearance_sigma_intensity = np.atleast_1d(np.asarray(appearance_sigma_intensity,
                                                                   np.float64))
        if not np.all(np.isfinite(self.appearance_sigma_intensity) &
                      (self.appearance_sigma_intensity > 0)):
            raise ValueError("appearance_sigma_intensity must be positive, got "
                             f"{appearance_sigma_intensity!r}")
        self.compatibility = None if compatibility is None else np.asarray(compatibility,
                                                                           np.float32)

    def __call__(self, probabilities: np.ndarray, image: np.ndarray,
                 spacing: Sequence[float]) -> np.ndarray:
        """Refine ``probabilities`` with the image.

        Args:
            probabilities: ``(x, y, z, C)`` class probabilities (zeros allowed;
                rows are renormalised); any strides (a cropped view is read
                slab by slab, not copied).
            image: ``(x, y, z)`` or ``(x, y, z, M)`` intensities on the same grid.
            spacing: ``(x, y, z)`` voxel spacing in mm.

        Returns:
            ``(x, y, z, C)`` float32 probabilities ``Q`` (each voxel sums to 1).

        Raises:
            ValueError: shapes that disagree, non-finite intensities, or a
                compatibility matrix that is not ``(C, C)``.
        """
        shape, classes = probabilities.shape[:3], probabilities.shape[-1]
        image = self._check(probabilities, image, spacing)
        spacing = np.asarray(spacing, np.float64)
        q = np.empty((int(np.prod(shape)), classes), np.float32)
        _unary_into(q, probabilities, add=False)
        _softmax_(q)
        if self.iterations == 0:
            return q.reshape(probabilities.shape)
        start = time.perf_counter()
        lattice, norm = self._appearance(image, spacing)
        built = time.perf_counter()
        for _ in range(self.iterations):
            q = self._step(q, probabilities, lattice, norm, shape, spacing)
        took = time.perf_counter() - built
        log.debug("dense CRF: %s voxels x %d classes, lattice %s vertices built in %.1f s, "
                  "%.2f s per iteration", f"{len(q):,}", classes,
                  f"{lattice.num_vertices:,}" if lattice else 0, built - start,
                  took / self.iterations)
        return q.reshape(probabilities.shape)

    def _check(self, probabilities: np.ndarray, image: np.ndarray,
               spacing: Sequence[float]) -> np.ndarray:
        if probabilities.ndim != 4:
            raise ValueError(f"probabilities must be (x, y, z, C), got shape {probabilities.shape}")
        image = np.asarray(image)
        image = image[..., None] if image.ndim == 3 else image
        if image.ndim != 4 or image.shape[:3] != probabilities.shape[:3]:
            raise ValueError(f"image {image.shape} is not on the probabilities' grid "
                             f"{probabilities.shape[:3]}")
        if self.appearance_weight > 0 and not np.all(np.isfinite(image)):
            raise ValueError("image intensities must be finite for the appearance kernel")
        if len(self.appearance_sigma_intensity) not in (1, image.shape[3]):
            raise ValueError(f"appearance_sigma_intensity: give 1 or {image.shape[3]} values "
                             f"(one per image channel), got {len(self.appearance_sigma_intensity)}")
        _per_axis(spacing, 3, "spacing")
        classes = probabilities.shape[3]
        if self.compatibility is not None and self.compatibility.shape != (classes, classes):
            raise ValueError(f"compatibility must be ({classes}, {classes}), "
                             f"got {self.compatibility.shape}")
        return image

    def _appearance(self, image: np.ndarray, spacing: np.ndarray) -> tuple:
        """The lattice over ``(I / θ_β, p / θ_α)`` and ``w_app`` over its filtered ones.

        The features are ordered intensities, z, y, x: the lattice keys then sort
        mostly by x, the slowest axis of the voxels, which keeps the splat and
        slice close to sequential in memory.
        """
        if self.appearance_weight == 0:
            return None, None
        shape = image.shape[:3]
        steps = (spacing / self.appearance_sigma_mm)[::-1]
        channels = image.reshape(-1, image.shape[3])
        inverse = 1.0 / np.broadcast_to(self.appearance_sigma_intensity, channels.shape[1:])

        def chunk(start: int, stop: int) -> np.ndarray:
            position = np.unravel_index(np.arange(start, stop), shape)[::-1]
            return np.column_stack([channels[start:stop].astype(np.float64) * inverse]
                                   + [p * s for p, s in zip(position, steps)])

        lower = np.concatenate([channels.min(axis=0) * inverse, np.zeros(3)])
        upper = np.concatenate([channels.max(axis=0) * inverse, (np.array(shape[::-1]) - 1) * steps])
        lattice = PermutohedralLattice.from_chunks(len(channels), chunk, lower, upper)
        norm = lattice.filter(np.ones(len(channels), np.float32))
        np.divide(self.appearance_weight, np.maximum(norm, 1e-20), out=norm)
        return lattice, norm

    def _step(self, q: np.ndarray, probabilities: np.ndarray, lattice: PermutohedralLattice | None,
              norm: np.ndarray | None, shape: Sequence[int], spacing: np.ndarray) -> np.ndarray:
        """One mean-field update: messages, compatibility, unaries, softmax."""
        if lattice is not None:
            message = lattice.filter(q)
            message *= norm[:, None]
        else:
            message = np.zeros_like(q)
        if self.smooth_weight > 0:
            self._add_smoothing(message, q, shape, spacing)
        if self.compatibility is None:  # Potts: −(Σ m − m) = m up to a constant per voxel
            _unary_into(message, probabilities, add=True)
        else:
            for a in range(0, len(q), _CHUNK):
                rows = slice(a, a + _CHUNK)
                message[rows] = -(message[rows] @ self.compatibility)
            _unary_into(message, probabilities, add=True)
        _softmax_(message)
        return message

    def _add_smoothing(self, message: np.ndarray, q: np.ndarray, shape: Sequence[int],
                       spacing: np.ndarray) -> None:
        """``message += w_smooth · (G * Q) / (G * 1)``, G the Gaussian in mm, class by class.

        The filter is linear and the classes of ``Q`` sum to 1, so the last
        class's message is ``w_smooth`` minus the others' (one filtering fewer).
        """
        sigma = self.smooth_sigma_mm / spacing
        scale = self.smooth_weight / _separable_ones(shape, sigma)
        volume_q, volume_m = q.reshape(*shape, -1), message.reshape(*shape, -1)
        buffer = np.empty(tuple(shape), np.float32)
        rest = np.full(tuple(shape), self.smooth_weight, np.float32)
        last = q.shape[1] - 1
        for c in range(last):
            ndimage.gaussian_filter(volume_q[..., c], sigma, output=buffer, mode="constant",
                                    truncate=4.0)
            buffer *= scale
            volume_m[..., c] += buffer
            rest -= buffer
        volume_m[..., last] += rest


def _separable_ones(shape: Sequence[int], sigma: np.ndarray) -> np.ndarray:
    """The Gaussian filter of a volume of ones with zero outside, as a broadcastable outer product."""
    result = np.ones((1, 1, 1), np.float32)
    for axis, (size, s) in enumerate(zip(shape, sigma)):
        ones = ndimage.gaussian_filter1d(np.ones(int(size), np.float32), s, mode="constant",
                                         truncate=4.0)
        result = result * ones.reshape([-1 if a == axis else 1 for a in range(3)])
    return result


def _unary_into(out: np.ndarray, probabilities: np.ndarray, add: bool) -> None:
    """``out (+)= log(max(P, MIN_PROBABILITY))``, ``out`` ``(N, C)``, ``P`` ``(x, y, z, C)``
    (any strides), slab by slab along x: no full-size temporaries or copies."""
    plane = int(np.prod(probabilities.shape[1:3]))
    step = max(1, _CHUNK // max(plane, 1))
    for x in range(0, probabilities.shape[0], step):
        block = probabilities[x:x + step].reshape(-1, probabilities.shape[3])
        logs = np.log(np.maximum(block, MIN_PROBABILITY, dtype=np.float32))
        rows = slice(x * plane, x * plane + len(logs))
        if add:
            out[rows] += logs
        else:
            out[rows] = logs


def _softmax_(logits: np.ndarray) -> None:
    """Softmax over the last axis, in place, in chunks."""
    for a in range(0, len(logits), _CHUNK):
        block = logits[a:a + _CHUNK]
        block -= block.max(axis=1, keepdims=True)
        np.exp(block, out=block)
        block /= block.sum(axis=1, keepdims=True)
