"""A generated nodule set on which one axial view is not enough: round nodules against vessels.

Each subject is ``nodule<i>_image.nii.gz`` (float32, 1 mm isotropic voxels) with a
bright object near the volume's centre in Gaussian noise, and one row
``nodule<i>,<class>`` in ``labels.csv`` (a classification ``csv_data_file``):

* class 0, *nodule*: a ball of radius ``r``;
* class 1, *vessel*: an ellipsoid with the same radius ``r`` across and ``elongation``
  times longer along z (or along an axis drawn from ``axes``).

The object's centre is the volume's centre voxel along the elongation axis and
jitters by up to ``jitter`` voxels across it, so the plane through the volume's
centre across that axis (the axial plane, for z) is a disk of radius ``r`` in both
classes - with ``r`` drawn from one range, a network that sees only that view is
at chance - while a coronal or sagittal view shows a disk against a bar. This is
the situation of Tu et al.'s SINGLE against ALL views (Sci Rep 7:8533, 2017) and of
the vessel-like false positives that multi-view nodule classifiers reject.
Edges are partial-volume ramps one voxel wide. Same seed, identical files.

``python -m niftykit.data.nodules runs/method_multiview/data`` writes the set that
``configs/method_multiview_*.yaml`` and ``configs/method_multiscale.yaml`` read.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from niftykit.io import write_image
from niftykit.typing import PathLike

__all__ = ["make_nodules", "nodule_volume"]

CLASSES = ("nodule", "vessel")


def nodule_volume(rng: np.random.Generator, label: int, size: int = 24,
                  radius: Tuple[float, float] = (2.5, 4.0), elongation: float = 3.0,
                  axis: int = 2, jitter: float = 1.0, noise: float = 0.25) -> np.ndarray:
    """One ``(size, size, size)`` float32 image of class ``label`` (0 ball, 1 elongated along ``axis``)."""
    r = rng.uniform(*radius)
    centre = np.full(3, float(size // 2))
    across = [a for a in range(3) if a != axis]
    centre[across] += rng.uniform(-jitter, jitter, size=2)
    semi = np.full(3, r)
    if label == 1:
        semi[axis] *= elongation
    grid = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij"), axis=-1)
    q = np.sqrt((((grid - centre) / semi) ** 2).sum(axis=-1))  # 1 on the surface
    shape = np.clip(r * (1.0 - q) + 0.5, 0.0, 1.0)
    image = rng.uniform(0.8, 1.2) * shape + rng.normal(0.0, noise, (size,) * 3)
    return image.astype(np.float32)


def make_nodules(folder: PathLike, n: int = 24, size: int = 24, seed: int = 0,
                 radius: Tuple[float, float] = (2.5, 4.0), elongation: float = 3.0,
                 axes: Sequence[int] = (2,), noise: float = 0.25,
                 jitter: float = 1.0) -> List[Tuple[str, int]]:
    """Write ``n`` subjects (classes alternate, 0 first) and ``labels.csv`` into ``folder``.

    Args:
        folder: output folder (created).
        n: subjects.
        size: volume side in voxels (1 mm).
        seed: random seed.
        radius: range of the radius ``r`` in voxels (both classes).
        elongation: the vessel's length over its width.
        axes: axes a vessel may run along (one drawn per subject); ``(2,)``: along z,
            so that the axial view is ambiguous.
        noise: standard deviation of the background noise (object contrast about 1).
        jitter: largest shift of the centre across the elongation axis, in voxels.

    Returns:
        ``(subject_id, class)`` per subject.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        axis = int(rng.choice(np.asarray(axes)))
        image = nodule_volume(rng, label, size, radius, elongation, axis, jitter, noise)
        subject = f"nodule{i:02d}"
        write_image(image, np.eye(4), folder / f"{subject}_image.nii.gz", overwrite=True)
        rows.append((subject, label))
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m niftykit.data.nodules FOLDER [--n N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m niftykit.data.nodules", description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = make_nodules(args.folder, n=args.n, size=args.size, seed=args.seed)
    print(f"{len(rows)} subjects ({', '.join(CLASSES)}) and labels.csv in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
