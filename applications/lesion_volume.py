"""Per-image regression of a lesion's volume, with the targets computed from label files.

A worked example of subclassing :class:`~niftykit.application.regression.RegressionApplication`
(``configs/example_lesion_volume.yaml``; ``docs/writing_an_application.md``). The
``regression`` section's ``output`` names an input section of label maps instead
of a ``csv_data_file``: each subject's target is the volume of its lesion (the
voxels with a label above 0) in mL, voxel count × voxel volume from the label
file's own affine, so no table of targets has to be written. The network gives
one value per image (``regression_head`` on an encoder); inference writes
``<save_seg_dir>/<id><output_postfix>.csv`` (``subject_id,volume_ml``) and
evaluation reports mse, rmse, mae and r2 over the subjects, all the parent's code.

Overridden: :meth:`LesionVolumeApplication.table` (the targets, from the label
files), :meth:`~LesionVolumeApplication.num_outputs` and
:meth:`~LesionVolumeApplication.columns` (one value, ``volume_ml``). That is all:
the parent reads per-image targets through ``table``.

:func:`make_lesions` writes the small data set (``python -m applications lesion_volume``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence

import numpy as np

from niftykit.application.regression import RegressionApplication
from niftykit.data.shapes import shapes_affine
from niftykit.errors import ConfigError
from niftykit.io import read_image, write_image
from niftykit.io.discovery import DataTable
from niftykit.typing import PathLike

__all__ = ["LesionVolumeApplication", "lesion_volume_ml", "make_lesions"]

COLUMN = "volume_ml"


def lesion_volume_ml(path: PathLike) -> float:
    """The volume of the voxels labelled above 0 in a label file, in mL (1000 mm³)."""
    label = read_image(path, "label")
    voxel_mm3 = abs(float(np.linalg.det(label.affine[:3, :3])))
    return float(np.count_nonzero(label.array > 0)) * voxel_mm3 / 1000.0


class LesionVolumeApplication(RegressionApplication):
    """Lesion volume (mL) per image (config section ``regression``, ``output``: label maps)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        output = self.task.output[0] if self.task.output else None
        if output and config.inputs[output].csv_data_file:
            raise ConfigError(f"{config.source}: [inputs.{output}] csv_data_file: the lesion "
                              "volume comes from label images (path_to_search), not a table")
        self.per_image = True  # one value per image, although `output` holds images

    @property
    def num_outputs(self) -> int:
        return 1

    def columns(self) -> List[str]:
        return [COLUMN]

    @property
    def table(self) -> DataTable:
        """The targets of every subject with a label file, computed once (mL)."""
        if self._table is None:
            source = self.task.output[0]
            subjects = self.subjects("evaluation")  # every subject with image and label
            values = {s.id: (lesion_volume_ml(s.paths[source]),) for s in subjects}
            section = self.config.inputs[source]  # named in messages: the label files' folder
            where = Path(next(iter(section.path_to_search), section.csv_file or source))
            self._table = DataTable(where, (COLUMN,), dict(sorted(values.items())))
        return self._table


def _lesion(rng: np.random.Generator, shape: Sequence[int]) -> tuple:
    """A bright ellipsoid (radii 1.5-5 voxels) anywhere in noise, and its mask."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    radii = rng.uniform(1.5, 5.0, 3)
    centre = np.array([rng.uniform(r, s - 1 - r) for r, s in zip(radii, shape)])
    mask = np.sum(((grid - centre) / radii) ** 2, axis=-1) <= 1.0
    image = rng.normal(0.0, 0.2, shape).astype(np.float32)
    image[mask] += rng.uniform(0.9, 1.1)
    return image, mask.astype(np.uint8)


def make_lesions(out_dir: PathLike, n_subjects: int = 12, shape: Sequence[int] = (16, 16, 16),
                 seed: int = 0, overwrite: bool = False) -> List[Path]:
    """Write ``case<i>_image.nii.gz`` and ``case<i>_label.nii.gz`` (one lesion each) on the
    quickstart's oblique grid (voxels 1.0 × 1.2 × 1.5 mm); returns the image paths.

    Lesion volumes spread over about 0.02-1 mL. Same seed, identical files.
    """
    out, rng = Path(out_dir), np.random.default_rng(seed)
    images = []
    for index in range(n_subjects):
        image, label = _lesion(rng, tuple(int(s) for s in shape))
        name = f"case{index:02d}"
        images.append(write_image(image, shapes_affine(), out / f"{name}_image.nii.gz",
                                  overwrite=overwrite))
        write_image(label, shapes_affine(), out / f"{name}_label.nii.gz", overwrite=overwrite)
    return images
