"""A generated set for weak supervision: image-level labels, lesion masks kept apart.

Each subject ``weak<i>_image.nii.gz`` (float32) is Gaussian noise on a smooth
intensity ramp with one bright rod (a vessel-like distractor, in every image) and,
in the positive subjects (odd ``i``, class 1), a bright ball of radius 2.5-4 voxels
(the lesion) anywhere in the volume away from the border and clear of the rod.
``labels.csv`` holds one row ``weak<i>,<class>`` per subject: all that training
sees. The lesion masks ``masks/weak<i>_mask.nii.gz`` (uint8, empty for class 0)
lie in a folder of their own, so a config that searches the data folder for
``_image`` never finds them; they are the held-out references of the class
activation maps (``applications/weak_localisation.py``).

The rod is as bright as the ball, so "the brightest voxel" is not the lesion and a
map must tell a compact blob from a line. Images are written on an oblique grid
of 1.0 × 1.2 × 1.5 mm voxels (:func:`~niftykit.data.shapes.shapes_affine`), so
outputs that do not go back to the input's grid are caught.

The setting follows the weakly supervised lesion localisation of Hwang & Kim
(self-transfer learning, arXiv:1602.01625, 2016) and Feng et al. (weakly
supervised nodule segmentation, MICCAI 2017). Same seed, identical files.

``python -m niftykit.data.weak runs/method_weak_cam/data`` writes the set that
``configs/method_weak_cam.yaml`` reads.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from niftykit.data.shapes import shapes_affine
from niftykit.io import write_image
from niftykit.typing import PathLike

__all__ = ["make_weak_lesions", "weak_volume"]

MASKS = "masks"


def _rod(grid: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """Distance (voxels) of each voxel from a random line through the middle third."""
    point = rng.uniform(size / 3, 2 * size / 3, 3)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    offset = grid - point
    along = offset @ direction
    return np.linalg.norm(offset - along[..., None] * direction, axis=-1)


def weak_volume(rng: np.random.Generator, lesion: bool, size: int = 24,
                radius: Tuple[float, float] = (2.5, 4.0), rod_radius: float = 1.2,
                noise: float = 0.25) -> Tuple[np.ndarray, np.ndarray]:
    """One ``(size,) * 3`` image and its lesion mask.

    Args:
        rng: random generator.
        lesion: whether the image holds a lesion (a ball).
        size: volume side in voxels.
        radius: range of the ball's radius in voxels.
        rod_radius: the rod's radius in voxels.
        noise: standard deviation of the noise (objects are about 1 brighter).

    Returns:
        The image ``(size, size, size)`` float32 and the mask, uint8, 1 inside the ball
        (all 0 without a lesion).
    """
    grid = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij"), -1)
    rod = _rod(grid, rng, size)
    shape = np.clip(rod_radius - rod + 0.5, 0.0, 1.0)
    mask = np.zeros((size,) * 3, np.uint8)
    if lesion:
        r = rng.uniform(*radius)
        for _ in range(1000):  # away from the border, clear of the rod
            centre = rng.uniform(r + 1, size - 2 - r, 3)
            if rod[tuple(np.round(centre).astype(int))] > r + rod_radius + 1.5:
                break
        distance = np.linalg.norm(grid - centre, axis=-1)
        shape = np.maximum(shape, np.clip(r - distance + 0.5, 0.0, 1.0))
        mask = (distance <= r).astype(np.uint8)
    ramp = ((grid - size / 2) / size) @ rng.normal(0.0, 0.3, 3)  # a smooth shading
    image = rng.uniform(0.8, 1.2) * shape + ramp + rng.normal(0.0, noise, (size,) * 3)
    return image.astype(np.float32), mask


def make_weak_lesions(folder: PathLike, n: int = 48, size: int = 24, seed: int = 0,
                      noise: float = 0.25) -> List[Tuple[str, int]]:
    """Write ``n`` subjects (classes alternate, 0 first), ``labels.csv`` and ``masks/``.

    Args:
        folder: output folder (created); the masks go to ``folder/masks``.
        n: subjects.
        size: volume side in voxels (1.0 × 1.2 × 1.5 mm, oblique).
        seed: random seed.
        noise: standard deviation of the noise.

    Returns:
        ``(subject_id, class)`` per subject.
    """
    folder = Path(folder)
    (folder / MASKS).mkdir(parents=True, exist_ok=True)
    rng, affine, rows = np.random.default_rng(seed), shapes_affine(), []
    for i in range(n):
        label = i % 2
        image, mask = weak_volume(rng, bool(label), size, noise=noise)
        subject = f"weak{i:02d}"
        write_image(image, affine, folder / f"{subject}_image.nii.gz", overwrite=True)
        write_image(mask, affine, folder / MASKS / f"{subject}_mask.nii.gz", overwrite=True)
        rows.append((subject, label))
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m niftykit.data.weak FOLDER [--n N] [--size S] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m niftykit.data.weak",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = make_weak_lesions(args.folder, n=args.n, size=args.size, seed=args.seed)
    positives = sum(label for _, label in rows)
    print(f"{len(rows)} subjects ({positives} with a lesion), labels.csv and {MASKS}/ "
          f"(the held-out lesion masks) in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
