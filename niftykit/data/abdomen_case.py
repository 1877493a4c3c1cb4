"""One synthetic abdominal CT case: scan, anatomy, intensities and the rib-cage crop box.

The scan is set up as a scanner would: the in-plane field of view fits the
patient's width with a margin (2-15 %), the slab runs from above the right
diaphragm dome to below the lower kidney pole, and the voxel size is field of
view / matrix (so ``(192, 192, 80)`` gives 1.5-2.3 mm in-plane, median 1.9, and
2.4-4 mm slices, median 3.3; ``(512, 512, 80)`` 0.6-0.9 mm in-plane). A fixed ``spacing`` can be
forced instead; the body may then not fit and is cut by the field of view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from niftykit.data.abdomen_anatomy import Patient, sample_patient
from niftykit.data.abdomen_grid import AXCODES, make_grid, scan_affine
from niftykit.data.abdomen_paint import CODE, LABELS, paint_patient
from niftykit.data.abdomen_shapes import Canvas
from niftykit.data.abdomen_tissue import PHASES, TISSUE, render_ct, texture_field, tissue_hu
from niftykit.typing import Shape3

__all__ = ["Case", "make_case"]


@dataclass(eq=False)
class Case:
    """A generated case.

    Attributes:
        image: ``(x, y, z)`` int16 HU.
        label: ``(x, y, z)`` uint8 label codes (:data:`LABELS`).
        affine: ``(4, 4)`` voxel-to-RAS+ mm.
        crop: ``(lo0, hi0, lo1, hi1, lo2, hi2)`` half-open voxel bounds of the
            rib-cage box along the array axes.
        info: what was drawn (orientation, spacing, phase, noise...), JSON-ready.
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    crop: Tuple[int, int, int, int, int, int]
    info: Dict[str, Any]


def _scan(rng: np.random.Generator, patient: Patient, shape: Shape3,
          spacing: Optional[Sequence[float]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    half_width, half_depth, centre_y = patient.body_outline()
    low, dome = patient.z_range()
    top, bottom = dome + rng.uniform(-5, 30), low - rng.uniform(10, 45)
    if spacing is None:
        inplane = max(2 * half_width * rng.uniform(1.02, 1.15) / shape[0],
                      2 * half_depth * rng.uniform(1.02, 1.1) / shape[1])
        spacing = (inplane, inplane, (top - bottom) / shape[2])
    yaw, tilt = rng.uniform(-6, 6), rng.uniform(-4, 4)
    centre = (rng.uniform(-8, 8), centre_y + rng.uniform(-8, 8), (top + bottom) / 2)
    scan = {"shape": shape, "spacing": spacing, "centre": centre, "yaw_deg": yaw, "tilt_deg": tilt}
    info = {"spacing_mm": [round(float(s), 4) for s in spacing],
            "yaw_deg": round(float(yaw), 2), "tilt_deg": round(float(tilt), 2)}
    return scan, info


def _extent(mask: np.ndarray, axis: int) -> Tuple[int, int]:
    """Half-open index range of the True voxels of ``mask`` along ``axis`` (all of it if none)."""
    index = np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))[0]
    if index.size == 0:
        return 0, mask.shape[axis]
    return int(index.min()), int(index.max()) + 1


def _crop(label: np.ndarray, tissue: np.ndarray, cavity_q2: np.ndarray, superior_up: bool,
          rib_cage_q2: float) -> Tuple[Tuple[int, ...], bool]:
    """The rib-cage box: slices from the superior extent of liver/spleen to the inferior
    extent of liver/kidneys, in-plane the rib cage over those slices; grown where a
    labelled voxel lies outside. Clears oesophagus labels outside its slices (as in the
    public set, whose annotations stop at the box). Returns the six bounds and whether
    the box had to grow."""
    kidney = np.isin(tissue, (TISSUE["kidney_cortex"], TISSUE["kidney_medulla"]))
    top = _extent(np.isin(label, (CODE["liver"], CODE["spleen"])), 2)
    bottom = _extent((label == CODE["liver"]) | kidney, 2)
    lo, hi = (bottom[0], top[1]) if superior_up else (top[0], bottom[1])
    organs = (label > 0) & (label != CODE["esophagus"])
    z_lo, z_hi = _extent(organs, 2)
    box = [0, 0, 0, 0, min(lo, z_lo), max(hi, z_hi)]
    grown = (box[4], box[5]) != (lo, hi)
    esophagus = label == CODE["esophagus"]
    esophagus[:, :, box[4]:box[5]] = False
    label[esophagus] = 0
    cage = (cavity_q2[:, :, box[4]:box[5]] <= rib_cage_q2).any(axis=2)
    for axis in (0, 1):
        rib_lo, rib_hi = _extent(cage, axis)
        organ_lo, organ_hi = _extent(label > 0, axis)
        box[2 * axis], box[2 * axis + 1] = min(rib_lo, organ_lo), max(rib_hi, organ_hi)
        grown |= (box[2 * axis], box[2 * axis + 1]) != (rib_lo, rib_hi)
    return tuple(box), grown


def make_case(seed: np.random.SeedSequence, shape: Shape3, spacing: Optional[Sequence[float]] = None,
              axcodes: str = AXCODES[0], phase: Optional[str] = None) -> Case:
    """Generate one case from its own seed (the same seed gives the same arrays).

    Args:
        seed: the case's seed.
        shape: ``(x, y, z)`` voxels (axes 0, 1 in-plane, 2 across slices).
        spacing: a fixed voxel size in mm, or None to fit the field of view to the patient.
        axcodes: storage orientation, one of :data:`AXCODES`.
        phase: contrast phase, one of :data:`PHASES`; None draws one.
    """
    rng = np.random.default_rng(seed)
    patient = sample_patient(rng)
    scan, info = _scan(rng, patient, shape, spacing)
    grid = make_grid(rng, shape, scan_affine(axcodes="RAS", **scan), rng.uniform(3, 7), rng.uniform(60, 110))
    spacing = grid.spacing
    canvas = Canvas(grid, texture_field(rng, shape, spacing, 5.0), texture_field(rng, shape, spacing, 20.0))
    body, cavity_q2 = paint_patient(canvas, patient)
    outside = ~body
    outside |= ~grid.fov_mask()[:, :, None]
    canvas.label[outside] = 0
    # rendered RAS-stored; flipping the arrays to the wanted storage leaves every voxel's world position
    affine = scan_affine(axcodes=axcodes, **scan)
    flips = tuple(axis for axis, code in enumerate(axcodes) if code != "RAS"[axis])
    label, tissue = np.flip(canvas.label, flips), np.flip(canvas.tissue, flips)
    thick = min(patient.body["muscle"] - 1.0, 9.0) / min(patient.body["cavity_a"], patient.body["cavity_b"])
    crop, grown = _crop(label, tissue, np.flip(cavity_q2, flips), affine[2, 2] > 0, (1.0 + thick) ** 2)
    drawn = str(PHASES[int(rng.integers(len(PHASES)))])
    phase = drawn if phase is None else phase
    oral = float(rng.uniform(150, 350)) if rng.random() < 0.2 else None
    hu = tissue_hu(rng, phase, float(rng.uniform(0.75, 1.25)), oral)
    noise = float(rng.uniform(8, 25))
    inplane_blur = float(rng.uniform(0.45, 0.75))
    blur = (inplane_blur, inplane_blur, float(rng.uniform(0.3, 0.5)))
    image = np.flip(render_ct(canvas.tissue, hu, canvas.fine, canvas.coarse, rng, noise, blur, outside), flips)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.bincount(label.ravel(), minlength=256)
    info.update({
        "axcodes": axcodes, "phase": phase, "oral_contrast_hu": None if oral is None else round(oral, 1),
        "noise_hu": round(noise, 2), "blur_voxels": [round(float(s), 3) for s in blur],
        "stomach_content": patient.options["stomach_content"], "crop_grown": bool(grown),
        "organ_volume_ml": {name: round(float(counts[code]) * voxel_ml, 2) for code, name in LABELS.items()},
    })
    return Case(np.ascontiguousarray(image), np.ascontiguousarray(label), affine, crop, info)
