"""Display slices of a case: CT, reference and prediction through an organ's centroid.

The volumes are reoriented with nibabel to the closest canonical orientation
(RAS+: array axes towards the patient's right, anterior, superior); obliquity is
not resampled away. Slices are then shown in the radiological convention:

* axial: viewed from the feet, the patient's right on the image left (their left
  on the image right), anterior up;
* coronal: viewed from the front, the patient's right on the image left, superior up;
* sagittal: viewed from the patient's left, anterior on the image left, superior up.

Each display array is ``(rows, columns)``; ``aspect`` is the row spacing over the
column spacing in mm, for ``imshow(aspect=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["Case", "View", "load_case", "centroid", "views_through"]

VIEWS = ("axial", "coronal", "sagittal")
#: which RAS axis a view cuts across, and the (row, column) axes it shows
_AXES = {"axial": (2, (1, 0)), "coronal": (1, (2, 0)), "sagittal": (0, (2, 1))}


@dataclass
class Case:
    """One subject in RAS+ voxel order.

    Attributes:
        subject: the subject id.
        image: ``(x, y, z)`` float32, first channel of the first image source.
        reference: ``(x, y, z)`` int label codes.
        prediction: ``(x, y, z)`` int label codes.
        spacing: voxel sizes ``(x, y, z)`` in mm.
    """

    subject: str
    image: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    spacing: Tuple[float, float, float]


@dataclass
class View:
    """One display slice: ``image`` and label maps ``(rows, columns)``."""

    name: str
    image: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    aspect: float


def _canonical(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    image = nib.as_closest_canonical(nib.load(str(path)))
    array = np.asanyarray(image.dataobj)
    while array.ndim > 3:
        array = array[..., 0]
    return array, image.affine


def load_case(subject: str, image: Path, reference: Path, prediction: Path) -> Optional[Case]:
    """The three volumes of a subject in RAS+ order; None when they are not on one grid
    (shape, or affine within 1e-3 mm) or a file is not NIfTI."""
    names = (str(image), str(reference), str(prediction))
    if not all(n.endswith((".nii", ".nii.gz")) for n in names):
        return None
    (ct, affine), (ref, ref_affine), (pred, pred_affine) = (_canonical(Path(n)) for n in names)
    if not (ct.shape == ref.shape == pred.shape):
        return None
    if not (np.allclose(affine, ref_affine, atol=1e-3) and np.allclose(affine, pred_affine, atol=1e-3)):
        return None
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    return Case(subject, np.asarray(ct, np.float32), np.rint(ref).astype(np.int32),
                np.rint(pred).astype(np.int32), spacing)  # type: ignore[arg-type]


def centroid(mask: np.ndarray) -> Optional[Tuple[int, int, int]]:
    """The voxel nearest the centroid of ``mask``, or None if it is empty."""
    points = np.argwhere(mask)
    if points.size == 0:
        return None
    return tuple(int(round(v)) for v in points.mean(axis=0))  # type: ignore[return-value]


def _display(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    axis, _ = _AXES[view]
    cut = np.take(volume, index, axis=axis)
    # cut is (x, y), (x, z) or (y, z): transpose to (rows, columns), then flip both so
    # that superior/anterior is up and the patient's right (or anterior) is on the left
    return cut.T[::-1, ::-1]


def views_through(case: Case, point: Tuple[int, int, int]) -> List[View]:
    """Axial, coronal and sagittal display slices through ``point`` (RAS+ voxel indices)."""
    found = []
    for view in VIEWS:
        axis, (rows, cols) = _AXES[view]
        aspect = case.spacing[rows] / case.spacing[cols]
        found.append(View(view, _display(case.image, view, point[axis]),
                          _display(case.reference, view, point[axis]),
                          _display(case.prediction, view, point[axis]), aspect))
    return found


def label_points(case: Case, codes: List[int]) -> Dict[int, Tuple[int, int, int]]:
    """Code -> centroid voxel (of the reference, else of the prediction) for each code
    present in either."""
    points = {}
    for code in codes:
        point = centroid(case.reference == code) or centroid(case.prediction == code)
        if point is not None:
            points[code] = point
    return points
