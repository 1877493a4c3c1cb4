"""A tiny generated segmentation set: a bright ball and a dim box in noise.

Each subject is ``<id>_image.nii.gz`` (float32, arbitrary units) and
``<id>_label.nii.gz`` (uint8: 0 background, 1 ball, 2 box) on an anisotropic,
slightly oblique grid, so that geometry bugs show. The two objects overlap
in intensity with the noisy background only a little, and lie anywhere in the
volume without touching: a network learns them in a few hundred iterations on
a CPU. Same seed, identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from niftykit.io import write_image
from niftykit.typing import PathLike

__all__ = ["make_shapes", "shapes_affine"]


def shapes_affine(spacing: Sequence[float] = (1.0, 1.2, 1.5), angle_deg: float = 10.0) -> np.ndarray:
    """A voxel-to-mm affine: anisotropic spacing, rotated about z, with an offset."""
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0],
                         [np.sin(angle), np.cos(angle), 0.0],
                         [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = (-20.0, 15.0, -30.0)
    return affine


def _subject(rng: np.random.Generator, shape: Tuple[int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One image and label; the objects' positions vary over the whole volume (they do
    not overlap), so a network has to find them by intensity and shape, not by where
    they usually are."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    size = np.array(shape, dtype=float)
    for _ in range(100):
        extent = np.maximum((rng.uniform(0.2, 0.35, 3) * size).astype(int), 2)
        low = np.array([rng.integers(0, s - e + 1) for s, e in zip(shape, extent)])
        box = np.all((grid >= low) & (grid < low + extent), axis=-1)
        radius = rng.uniform(0.12, 0.2) * size.min()
        centre = np.array([rng.uniform(radius, s - radius) for s in size])
        ball = np.linalg.norm(grid - centre, axis=-1) <= radius
        if not np.any(ball & box):
            break
    label = np.zeros(shape, dtype=np.uint8)
    label[box] = 2
    label[ball] = 1
    levels = [0.0, rng.uniform(0.9, 1.1), rng.uniform(0.4, 0.6)]
    image = np.choose(label, levels).astype(np.float32)
    image += rng.normal(0.0, 0.15, shape).astype(np.float32)
    return image, label


def make_shapes(out_dir: PathLike, n_subjects: int = 6, shape: Sequence[int] = (24, 24, 24),
                seed: int = 0, overwrite: bool = False) -> List[Path]:
    """Write ``n_subjects`` image/label pairs to ``out_dir``; returns the image paths.

    Args:
        out_dir: folder (created).
        n_subjects: how many subjects (ids ``case00``, ``case01``...).
        shape: volume shape (x, y, z) in voxels.
        seed: random seed; the same seed gives identical files.
        overwrite: replace existing files (otherwise an existing file is an error).
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    affine = shapes_affine()
    images = []
    for index in range(n_subjects):
        image, label = _subject(rng, tuple(int(s) for s in shape))
        name = f"case{index:02d}"
        images.append(write_image(image, affine, out / f"{name}_image.nii.gz", overwrite=overwrite))
        write_image(label, affine, out / f"{name}_label.nii.gz", overwrite=overwrite)
    return images
