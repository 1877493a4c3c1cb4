"""Tissues of the synthetic abdominal CT and their Hounsfield units per contrast phase.

Each voxel of a phantom holds one tissue (a ``uint8`` index into
:data:`TISSUES`); :func:`render_ct` turns that map into HU: the tissue's mean
for the case's contrast phase, plus two smooth texture fields (fine, about
5 mm, and coarse, about 20 mm) scaled per tissue, plus scanner noise, blurred
by the scanner's point spread (partial volume), then set to -1000 outside the
body and outside the reconstruction field of view.

Means are typical adult values (non-contrast, late-arterial/pancreatic phase
at about 35 s, portal-venous at about 70 s); a case draws an enhancement
factor (how much of each tissue's enhancement it reaches) and a small jitter
per tissue, so the same organ differs between cases and organs overlap:
liver and spleen, pancreas and bowel wall, bile and bowel fluid.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
from scipy import ndimage

from niftykit.data.abdomen_grid import controls, smooth_field

__all__ = ["PHASES", "TISSUES", "TISSUE", "tissue_hu", "texture_field", "render_ct"]

#: Contrast phases, in the order of the HU columns of :data:`TISSUES`.
PHASES: Tuple[str, ...] = ("non_contrast", "arterial", "portal_venous")

#: ``(name, HU non-contrast, HU arterial, HU portal venous, fine texture SD, coarse texture SD)``.
TISSUES: Tuple[Tuple[str, float, float, float, float, float], ...] = (
    ("air", -1000, -1000, -1000, 0, 0),
    ("subcutaneous_fat", -105, -105, -100, 12, 6),
    ("skin", 20, 25, 30, 6, 0),
    ("muscle", 50, 58, 62, 8, 4),
    ("visceral_fat", -95, -95, -92, 12, 8),
    ("lung", -860, -860, -860, 40, 30),
    ("heart", 40, 250, 150, 10, 15),
    ("cortical_bone", 750, 750, 750, 90, 0),
    ("cancellous_bone", 220, 225, 230, 40, 20),
    ("disc", 80, 85, 90, 10, 0),
    ("csf", 12, 12, 12, 6, 0),
    ("aorta", 42, 320, 165, 10, 0),
    ("ivc", 42, 90, 150, 10, 10),
    ("portal_vein", 42, 110, 175, 10, 0),
    ("artery", 42, 280, 160, 10, 0),
    ("liver", 58, 78, 118, 6, 6),
    ("hepatic_vein", 38, 60, 150, 8, 0),
    ("liver_cyst", 8, 8, 10, 5, 0),
    ("spleen", 48, 125, 122, 6, 6),
    ("kidney_cortex", 33, 190, 175, 8, 0),
    ("kidney_medulla", 30, 85, 170, 8, 0),
    ("renal_sinus_fat", -85, -85, -85, 12, 0),
    ("urine", 8, 8, 10, 5, 0),
    ("bile", 12, 12, 12, 5, 0),
    ("gallbladder_wall", 35, 60, 75, 6, 0),
    ("gi_wall", 40, 100, 88, 8, 4),
    ("gi_fluid", 15, 15, 15, 8, 4),
    ("gi_gas", -980, -980, -980, 15, 0),
    ("food", 20, 20, 20, 45, 10),
    ("stool", -80, -80, -80, 140, 40),
    ("esophagus", 42, 65, 78, 8, 0),
    ("pancreas", 42, 128, 102, 12, 4),
    ("pancreas_fat", -60, -60, -60, 25, 0),
    ("rib", 450, 450, 450, 80, 0),
    ("diaphragm", 50, 60, 65, 8, 0),
)
#: Tissue name -> index.
TISSUE: Dict[str, int] = {row[0]: index for index, row in enumerate(TISSUES)}

_JITTER_HU = 4.0
_UNJITTERED = {"air", "gi_gas", "lung", "cortical_bone", "rib"}


def tissue_hu(rng: np.random.Generator, phase: str, enhancement: float,
              oral_contrast: float | None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-tissue ``(mean HU, fine texture SD, coarse texture SD)`` of one case, float32.

    Args:
        phase: one of :data:`PHASES`.
        enhancement: fraction of each tissue's phase enhancement reached (about 0.75-1.25).
        oral_contrast: HU of positive oral contrast in the bowel fluid, or None.
    """
    table = np.array([row[1:] for row in TISSUES], dtype=np.float64)
    mean = table[:, 0] + enhancement * (table[:, PHASES.index(phase)] - table[:, 0])
    jitter = rng.normal(0.0, _JITTER_HU, len(TISSUES))
    mean += np.where([row[0] in _UNJITTERED for row in TISSUES], 0.0, jitter)
    fine, coarse = table[:, 3].copy(), table[:, 4].copy()
    if phase == "arterial":  # arciform ("zebra") enhancement of the spleen
        coarse[TISSUE["spleen"]] = 35.0
    if oral_contrast is not None:
        mean[TISSUE["gi_fluid"]] = oral_contrast
        fine[TISSUE["gi_fluid"]] = 25.0
    return mean.astype(np.float32), fine.astype(np.float32), coarse.astype(np.float32)


def texture_field(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float],
                  scale_mm: float) -> np.ndarray:
    """A smooth float32 random field of unit SD varying over about ``scale_mm``."""
    field = smooth_field(rng.standard_normal(controls(shape, spacing, scale_mm)), shape)
    field -= np.float32(field[::3, ::3, ::2].mean())
    field /= max(float(field[::3, ::3, ::2].std()), 1e-3)
    return field


def _kernel_gain(sigma: float, truncate: float) -> float:
    """Root sum of squares of the 1-D Gaussian kernel ``ndimage.gaussian_filter`` uses."""
    if sigma <= 0:
        return 1.0
    radius = int(truncate * sigma + 0.5)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    weights /= weights.sum()
    return float(np.sqrt((weights ** 2).sum()))


def render_ct(tissue: np.ndarray, hu: Tuple[np.ndarray, np.ndarray, np.ndarray],
              fine: np.ndarray, coarse: np.ndarray, rng: np.random.Generator,
              noise_hu: float, blur_voxels: Sequence[float], outside: np.ndarray) -> np.ndarray:
    """The int16 CT of a tissue map.

    Args:
        tissue: ``(x, y, z)`` uint8 tissue indices.
        hu: the case's :func:`tissue_hu`.
        fine, coarse: ``(x, y, z)`` unit texture fields (:func:`texture_field`).
        noise_hu: SD of the noise after the blur, HU (white noise before it).
        blur_voxels: Gaussian SD of the point spread along each axis, voxels.
        outside: ``(x, y, z)`` bool, True outside the body or the field of view
            (set to exactly -1000 HU after noise and blur).
    """
    mean, fine_sd, coarse_sd = hu
    image = mean[tissue]
    image += fine_sd[tissue] * fine
    image += coarse_sd[tissue] * coarse
    truncate = 3.0
    gain = float(np.prod([_kernel_gain(s, truncate) for s in blur_voxels]))
    image += rng.standard_normal(tissue.shape, dtype=np.float32) * np.float32(noise_hu / gain)
    image = ndimage.gaussian_filter(image, sigma=list(blur_voxels), truncate=truncate)
    image[outside] = -1000.0
    np.clip(image, -1024.0, 3071.0, out=image)
    return np.rint(image).astype(np.int16)
