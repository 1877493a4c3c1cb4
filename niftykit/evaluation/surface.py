"""Surface-distance metrics between segmentation masks, in mm (numpy/scipy only).

Conventions:

* **Surface.** The surface of a mask is the mask minus its erosion by the
  face-connected structuring element (6-connectivity in 3-D, 4 in 2-D): a
  voxel is on the surface when one of its face neighbours is outside the mask.
  Voxels outside the image count as outside, so a mask touching the image
  border has a surface there.
* **Distances** run between surface voxel centres, in mm, using the voxel
  spacing (anisotropic allowed): for each surface voxel of one mask, the
  distance to the nearest surface voxel of the other, from
  ``scipy.ndimage.distance_transform_edt(~surface, sampling=spacing)``. Both
  masks are first cropped to their joint bounding box plus one voxel, which
  changes no distance.
* **HD95** is MONAI's ``compute_hausdorff_distance(percentile=95)`` (and
  NiftyNet's ``hausdorff95_distance``) convention: the larger of the two
  directed 95th percentiles (numpy's linear interpolation), not the
  percentile of the pooled distances.
* **Empty masks.** Both empty: every metric is NaN (the structure is absent;
  means skip it). Exactly one empty: distances are ``inf`` and surface Dice is 0.

References:
    Huttenlocher et al., "Comparing images using the Hausdorff distance",
    IEEE TPAMI 1993. Heimann et al., "Comparison and evaluation of methods for
    liver segmentation from CT datasets", IEEE TMI 2009 (average symmetric
    surface distance). Nikolov et al., "Deep learning to achieve clinically
    applicable segmentation of head and neck anatomy for radiotherapy",
    arXiv:1809.04430, 2018 (surface Dice).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "surface_mask",
    "surface_distances",
    "surface_metrics",
    "hausdorff",
    "hausdorff95",
    "average_distance",
    "surface_dice",
]

SURFACE_METRICS = ("hausdorff", "hausdorff95", "average_distance", "surface_dice")


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a mask: the mask minus its face-connected erosion.

    Args:
        mask: boolean mask, e.g. ``(x, y, z)``.

    Returns:
        Boolean array of the same shape, True on the surface.
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def _spacing(spacing: Optional[Sequence[float]], ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    values = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if values.size != ndim or not np.all(values > 0):
        raise ValueError(f"spacing must be {ndim} positive values in mm, got {list(values)}")
    return values


def _crop(seg: np.ndarray, ref: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to their joint bounding box plus ``margin`` voxels."""
    joint = seg | ref
    box = []
    for axis in range(joint.ndim):
        hits = np.flatnonzero(np.any(joint, axis=tuple(a for a in range(joint.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin, 0), int(hits[-1]) + 1 + margin))
    return seg[tuple(box)], ref[tuple(box)]


def surface_distances(
    seg: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm, both ways.

    Args:
        seg: non-empty segmentation mask, e.g. ``(x, y, z)``.
        ref: non-empty reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.

    Returns:
        ``(seg_to_ref, ref_to_seg)``: for each surface voxel of ``seg`` the
        distance to the nearest surface voxel of ``ref``, and the reverse;
        1-D float arrays in mm.

    Raises:
        ValueError: the shapes differ, a mask is empty, or the spacing is bad.
    """
    seg, ref = np.asarray(seg, dtype=bool), np.asarray(ref, dtype=bool)
    if seg.shape != ref.shape:
        raise ValueError(f"segmentation shape {seg.shape} differs from reference shape {ref.shape}")
    sampling = _spacing(spacing, seg.ndim)
    if not seg.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks")
    seg_surface, ref_surface = (surface_mask(m) for m in _crop(seg, ref))
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=sampling)
    to_seg = ndimage.distance_transform_edt(~seg_surface, sampling=sampling)
    return to_ref[seg_surface], to_seg[ref_surface]


def surface_metrics(
    seg: np.ndarray,
    ref: np.ndarray,
    spacing: Optional[Sequence[float]] = None,
    tolerance_mm: float = 1.0,
) -> dict[str, float]:
    """Hausdorff, HD95, average symmetric surface distance and surface Dice at once.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.
        tolerance_mm: surface Dice tolerance τ in mm.

    Returns:
        ``{"hausdorff", "hausdorff95", "average_distance"}`` in mm and
        ``"surface_dice"`` in [0, 1]; see the module docstring for the
        conventions and empty masks.
    """
    seg, ref = np.asarray(seg, dtype=bool), np.asarray(ref, dtype=bool)
    has_seg, has_ref = bool(seg.any()), bool(ref.any())
    if not (has_seg and has_ref):
        if seg.shape != ref.shape:
            raise ValueError(f"segmentation shape {seg.shape} differs from reference shape {ref.shape}")
        _spacing(spacing, seg.ndim)
        far, overlap = (float("inf"), 0.0) if has_seg or has_ref else (float("nan"), float("nan"))
        return {"hausdorff": far, "hausdorff95": far, "average_distance": far, "surface_dice": overlap}
    to_ref, to_seg = surface_distances(seg, ref, spacing)
    both = np.concatenate([to_ref, to_seg])
    return {
        "hausdorff": float(max(to_ref.max(), to_seg.max())),
        "hausdorff95": float(max(np.percentile(to_ref, 95), np.percentile(to_seg, 95))),
        "average_distance": float(both.mean()),
        "surface_dice": float(np.count_nonzero(both <= tolerance_mm) / both.size),
    }


def hausdorff(seg: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None) -> float:
    """Symmetric Hausdorff distance in mm: the largest directed surface distance.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.

    Returns:
        Distance in mm; ``inf`` when exactly one mask is empty, NaN when both are.
    """
    return surface_metrics(seg, ref, spacing)["hausdorff"]


def hausdorff95(seg: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None) -> float:
    """95th-percentile Hausdorff distance in mm: max of the two directed 95th percentiles.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.

    Returns:
        Distance in mm; ``inf`` when exactly one mask is empty, NaN when both are.
    """
    return surface_metrics(seg, ref, spacing)["hausdorff95"]


def average_distance(seg: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None) -> float:
    """Average symmetric surface distance (ASSD) in mm (Heimann et al., TMI 2009).

    The mean over the surface voxels of both masks of the distance to the
    other surface: ``(Σ d(s, R) + Σ d(r, S)) / (|∂S| + |∂R|)``.

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.

    Returns:
        Distance in mm; ``inf`` when exactly one mask is empty, NaN when both are.
    """
    return surface_metrics(seg, ref, spacing)["average_distance"]


def surface_dice(
    seg: np.ndarray,
    ref: np.ndarray,
    spacing: Optional[Sequence[float]] = None,
    tolerance_mm: float = 1.0,
) -> float:
    """Surface Dice (normalised surface distance) at tolerance τ (Nikolov et al. 2018).

    The share of both surfaces lying within τ mm of the other surface:
    ``(|{s ∈ ∂S: d(s, ∂R) ≤ τ}| + |{r ∈ ∂R: d(r, ∂S) ≤ τ}|) / (|∂S| + |∂R|)``.
    Surface voxels are counted, not weighted by surface-element area (as in
    MONAI's ``compute_surface_dice``; DeepMind's reference code weights surfels).

    Args:
        seg: segmentation mask, e.g. ``(x, y, z)``.
        ref: reference mask of the same shape.
        spacing: voxel size in mm per axis; None for 1 mm.
        tolerance_mm: τ in mm.

    Returns:
        Surface Dice in [0, 1]; 0 when exactly one mask is empty, NaN when both are.
    """
    return surface_metrics(seg, ref, spacing, tolerance_mm)["surface_dice"]
