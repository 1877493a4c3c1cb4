"""Fast high-dimensional Gaussian filtering on a sparse permutohedral lattice.

Adams, Baek and Davis, "Fast high-dimensional filtering using the
permutohedral lattice", Computer Graphics Forum 29(2), 2010, as Krähenbühl
and Koltun's ``densecrf`` (``permutohedral.cpp``, NIPS 2011) implements it,
which is also the filter of DeepMedic's 3-D CRF (Kamnitsas et al., MedIA 2017;
``github.com/deepmedic/dense3dCrf``). For ``N`` points with features
``f_i`` (``d`` of them, already divided by their standard deviations) it
approximates

    out_i = Σ_j exp(−|f_i − f_j|² / 2) · v_j

in time linear in ``N`` (``O(N·d²)`` to build, ``O(N·d·C)`` per filtering of
``C`` channels):

1. *embed*: each feature vector is lifted onto the plane ``Σ x = 0`` of
   ``R^(d+1)`` (scaled by ``sqrt(2/3)·(d+1)``, Adams et al.'s choice, so
   that one blur is about a unit Gaussian), and the ``d + 1`` vertices of
   the lattice simplex around it are found with their barycentric weights;
2. *splat*: every value is spread to its ``d + 1`` vertices;
3. *blur*: ``[1/4, 1/2, 1/4]`` along each of the ``d + 1`` lattice
   directions, over the occupied vertices only (missing neighbours count as
   zero, as in ``densecrf``);
4. *slice*: every point reads back the barycentric sum of its vertices.

Only occupied vertices exist: their number is about ``N`` divided by the
voxels per kernel width, so a smooth kernel makes a small lattice. Vertices
are found with a sort (``numpy.unique``) instead of a hash table; keys pack
the ``d`` free coordinates of a vertex into one int64. The splat and slice
are one sparse ``(N, L)`` matrix (``d + 1`` entries per row; about
``8·(d + 1)`` bytes per point). Building runs in chunks of points, so its
temporaries do not grow with ``N``.

Accuracy: the approximation is the published one, not an exact Gaussian (the
blur of a lattice about one standard deviation coarse). On an 8 × 8 × 6 grid
with intensities (``d = 4``) the filtered-and-normalised values
``out / out(ones)`` differ from the all-pairs ones by at most 0.014 (root
mean square 0.004) for values in ``[0, 1]``; on 16 × 16 × 12 grids with noisy
intensities, by at most 0.05 (RMS 0.004). The unnormalised sums are a
constant multiple of the exact ones within about ±20 %, which a
normalisation by the filtered ones cancels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

__all__ = ["PermutohedralLattice"]

#: ``chunks(start, stop)`` -> the ``(stop - start, d)`` features of those points.
FeatureChunks = Callable[[int, int], np.ndarray]

_KEY_LIMIT = 2.0 ** 62


def _scales(d: int) -> np.ndarray:
    """Per-feature scale of the embedding: ``sqrt(2/3)·(d + 1) / sqrt((i + 1)(i + 2))``."""
    i = np.arange(d, dtype=np.float64)
    return np.sqrt(2.0 / 3.0) * (d + 1) / np.sqrt((i + 1.0) * (i + 2.0))


def _elevation(scale: np.ndarray) -> np.ndarray:
    """``(d, d + 1)`` matrix lifting features onto the plane ``Σ x = 0`` (Adams et al.'s ``E``)."""
    d = len(scale)
    matrix = np.zeros((d, d + 1))
    for j in range(d + 1):
        matrix[j:, j] = scale[j:]
        if j > 0:
            matrix[j - 1, j] -= j * scale[j - 1]
    return matrix


def _elevate(features: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``features @ _elevation(scale)`` without a matrix product (BLAS threads cost more here)."""
    n, d = features.shape
    scaled = features * scale
    elevated = np.zeros((n, d + 1))
    elevated[:, :d] = np.cumsum(scaled[:, ::-1], axis=1)[:, ::-1]
    elevated[:, 1:] -= scaled * np.arange(1, d + 1)
    return elevated


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort; numpy's hashing ``unique`` is slower on many int64 keys)."""
    values = np.sort(values, kind="stable")
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


class PermutohedralLattice:
    """A permutohedral lattice built over ``N`` points, for Gaussian filtering.

    Args:
        features: ``(N, d)`` features already divided by the kernel's standard
            deviations (so that the kernel is ``exp(−|f_i − f_j|² / 2)``).
        chunk_size: points embedded at once while building (bounds the
            temporaries, about ``100·(d + 1)`` bytes a point).

    Raises:
        ValueError: features that are not a finite ``(N, d)`` array, or a
            feature range too wide for 63-bit vertex keys (tiny standard
            deviations on many channels).
    """

    def __init__(self, features: np.ndarray, chunk_size: int = 1 << 17) -> None:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] < 1:
            raise ValueError(f"features must be (N, d) with d >= 1, got shape {features.shape}")
        if not np.all(np.isfinite(features)):
            raise ValueError("features must be finite")
        lower, upper = features.min(axis=0), features.max(axis=0)
        self._build(len(features), lambda a, b: features[a:b], lower, upper, chunk_size)

    @classmethod
    def from_chunks(cls, num_points: int, chunks: FeatureChunks, lower: Sequence[float],
                    upper: Sequence[float], chunk_size: int = 1 << 17) -> PermutohedralLattice:
        """Build from features computed chunk by chunk (never all held at once).

        Args:
            num_points: ``N``.
            chunks: ``chunks(start, stop)`` returns the ``(stop − start, d)``
                scaled features of points ``start … stop − 1``.
            lower, upper: bounds of each feature over all points (``d`` each).
            chunk_size: points per chunk.
        """
        lattice = cls.__new__(cls)
        lattice._build(int(num_points), chunks, np.asarray(lower, np.float64),
                       np.asarray(upper, np.float64), chunk_size)
        return lattice

    # -- building ---------------------------------------------------------------------
    def _build(self, n: int, chunks: FeatureChunks, lower: np.ndarray, upper: np.ndarray,
               chunk_size: int) -> None:
        d = len(lower)
        self.num_features, self.num_points = d, n
        self._scale = _scales(d)
        self._elevation = _elevation(self._scale)
        self._plan_keys(lower, upper)
        width = d + 1
        indices = np.empty(n * width, np.int32)
        weights = np.empty(n * width, np.float32)
        found = []
        for a in range(0, n, chunk_size):  # local vertex numbers, then global ones
            b = min(a + chunk_size, n)
            keys, bary = self._embed(chunks(a, b))
            unique, local = np.unique(keys.reshape(-1), return_inverse=True)
            found.append((a, b, unique))
            indices[a * width:b * width] = local.reshape(-1)
            weights[a * width:b * width] = bary.reshape(-1)
        self.keys = _sorted_unique(np.concatenate([u for _, _, u in found])) if found else \
            np.zeros(0, np.int64)
        for a, b, unique in found:
            numbers = np.searchsorted(self.keys, unique).astype(np.int32)
            indices[a * width:b * width] = numbers[indices[a * width:b * width]]
        del found
        indptr = np.arange(0, n * width + 1, width, dtype=np.int64 if n * width >= 2**31 else np.int32)
        self._splat = sparse.csr_matrix((weights, indices, indptr), shape=(n, len(self.keys)))
        self._neighbours = self._find_neighbours()

    def _plan_keys(self, lower: np.ndarray, upper: np.ndarray) -> None:
        """Radices packing a vertex's ``d`` free coordinates into one int64 (from the feature bounds)."""
        d, width = self.num_features, self.num_features + 1
        lo = np.minimum(lower[:, None] * self._elevation, upper[:, None] * self._elevation).sum(axis=0)
        hi = np.maximum(lower[:, None] * self._elevation, upper[:, None] * self._elevation).sum(axis=0)
        margin = 4 * width  # rounding, the rank correction, the simplex and blur neighbours
        self._qlow = np.floor((lo[:d] - margin) / width).astype(np.int64)
        radix = np.ceil((hi[:d] + margin) / width).astype(np.int64) - self._qlow + 1
        if np.prod(radix.astype(np.float64)) * width >= _KEY_LIMIT:
            raise ValueError(
                f"the feature range is too wide for the lattice ({d} features spanning "
                f"{np.round(upper - lower, 1).tolist()} standard deviations); use larger standard "
                "deviations or fewer intensity channels")
        self._radix = radix
        self._mult = np.concatenate([[1], np.cumprod(radix[:-1])]).astype(np.int64)

    def _pack(self, coords: np.ndarray) -> np.ndarray:
        """``(n, d)`` vertex coordinates (all ≡ r mod d + 1) -> int64 keys."""
        width = self.num_features + 1
        remainder = np.mod(coords[:, 0], width)
        q = (coords - remainder[:, None]) // width - self._qlow
        return remainder + width * (q @ self._mult)

    def _unpack(self, keys: np.ndarray) -> np.ndarray:
        width = self.num_features + 1
        remainder, rest = np.mod(keys, width), keys // width
        q = (rest[:, None] // self._mult) % self._radix
        return (q + self._qlow) * width + remainder[:, None]

    def _embed(self, features: np.ndarray) -> tuple:
        """Vertex keys ``(n, d + 1)`` and barycentric weights ``(n, d + 1)`` of each point.

        ``densecrf``'s ``PermutohedralLattice::init`` vectorised: the nearest
        remainder-0 point, the ranks of the residuals, the wrap-around when its
        coordinates do not sum to zero; then vertex ``r`` lies at
        ``rem0 + r − (d + 1)·[rank > d − r]`` and the weights are the
        differences of the residuals sorted by rank.
        """
        d, width = self.num_features, self.num_features + 1
        n = len(features)
        elevated = _elevate(np.asarray(features, np.float64), self._scale)
        rem0 = np.rint(elevated / width)  # in units of d + 1
        total = rem0.sum(axis=1).astype(np.int64)
        order = np.argsort(rem0 * width - elevated, axis=1, kind="stable")  # descending residual
        rank = np.empty((n, width), np.int64)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(width), (n, width)), axis=1)
        rank += total[:, None]
        rem0 += rank < 0
        rem0 -= rank > d
        rank %= width
        residual = elevated / width - rem0
        by_rank = np.take_along_axis(order, (np.arange(width) - total[:, None]) % width, axis=1)
        v = np.take_along_axis(residual, by_rank, axis=1)
        bary = np.empty((n, width))
        bary[:, 0] = 1.0 + v[:, d] - v[:, 0]
        bary[:, 1:] = v[:, d - 1::-1] - v[:, d:0:-1]
        base = (rem0[:, :d].astype(np.int64) - self._qlow) @ self._mult
        keys = np.empty((n, width), np.int64)
        for r in range(width):
            shift = np.zeros(n, np.int64)
            for i in range(d):
                shift += self._mult[i] * (rank[:, i] > d - r)
            keys[:, r] = r + width * (base - shift)
        return keys, bary

    def _find_neighbours(self) -> list:
        """Per lattice direction, the index of each vertex's two neighbours (``L``: none)."""
        d, count = self.num_features, len(self.keys)
        coords = self._unpack(self.keys)
        pairs = []
        for j in range(d + 1):
            step = -np.ones(d, np.int64)
            if j < d:
                step[j] += d + 1
            pair = []
            for sign in (1, -1):
                wanted = self._pack(coords + sign * step)
                index = np.searchsorted(self.keys, wanted)
                index[index == count] = 0
                found = self.keys[index] == wanted if count else np.zeros(0, bool)
                pair.append(np.append(np.where(found, index, count), count).astype(np.int32))
            pairs.append(tuple(pair))
        return pairs

    # -- filtering ----------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        """``L``, the occupied lattice vertices."""
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        """Bytes held by the lattice (splat matrix, keys, neighbour tables)."""
        matrix = self._splat.data.nbytes + self._splat.indices.nbytes + self._splat.indptr.nbytes
        tables = sum(a.nbytes + b.nbytes for a, b in self._neighbours)
        return matrix + self.keys.nbytes + tables

    def filter(self, values: np.ndarray) -> np.ndarray:
        """Approximately ``Σ_j exp(−|f_i − f_j|² / 2) · values_j`` for every point ``i``.

        Args:
            values: ``(N, C)`` (or ``(N,)``) values, any float dtype; computed in float32.

        Returns:
            A new ``(N, C)`` float32 array (``(N,)`` for 1-D values). The sums
            include ``j = i``. Memory besides it: ``3·L·C`` floats.

        Raises:
            ValueError: ``values`` without one row per point.
        """
        flat = np.asarray(values, np.float32)
        vector = flat.ndim == 1
        flat = flat.reshape(len(flat), -1)
        if len(flat) != self.num_points:
            raise ValueError(f"values must have {self.num_points} rows, got {len(flat)}")
        grid = np.zeros((self.num_vertices + 1, flat.shape[1]), np.float32)
        grid[:-1] = self._splat.T @ flat
        spare = np.empty_like(grid)
        for left, right in self._neighbours:
            np.take(grid, left, axis=0, out=spare)
            spare += grid[right]
            spare *= 0.25
            grid *= 0.5
            grid += spare
        del spare
        result = self._splat @ grid[:-1]
        return result[:, 0] if vector else result
