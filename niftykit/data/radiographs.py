"""Generated chest "radiographs" for screening: few positives, each with a subtle lesion.

Each subject is ``cxr<i>_image.png``, a grey PNG (16-bit by default, 8-bit with
``bits=8``) of ``size × size`` pixels, and one row ``cxr<i>,<class>`` in ``labels.csv``
(a classification ``csv_data_file``). The picture is a frontal chest film in the
radiographic convention (air dark, bone and soft tissue bright), drawn at random:

* a bright body outline with a brighter mediastinum down the middle;
* two dark lung fields (ellipses whose size, position and darkness vary);
* faint rib bands across the lungs, a smooth exposure gradient, film noise and a
  slight blur.

Class 1 (*abnormal*, a share ``prevalence`` of the subjects, placed at random) has
one round opacity of radius 1.5–3 pixels inside a lung field, ``contrast`` (0.3)
brighter than the lung at its centre (a Gaussian profile): a few times a rib band's
brightness change (0.08): a small nodule or
focal consolidation on a screening film (CAD4TB; Hogeweg et al., IEEE TMI 34(12), 2015). Class 0
(*normal*) has none. Same seed, identical files.

``python -m niftykit.data.radiographs runs/method_xray_screening/data`` writes the set
that ``configs/method_xray_screening.yaml`` reads.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from niftykit.typing import PathLike

__all__ = ["make_radiographs", "radiograph"]

CLASSES = ("normal", "abnormal")


def _ellipse(rows: np.ndarray, cols: np.ndarray, centre: Tuple[float, float],
             semi: Tuple[float, float]) -> np.ndarray:
    """A soft (one pixel ramp) ellipse mask in [0, 1]."""
    q = np.sqrt(((rows - centre[0]) / semi[0]) ** 2 + ((cols - centre[1]) / semi[1]) ** 2)
    return np.clip((1.0 - q) * min(semi) + 0.5, 0.0, 1.0)


def radiograph(rng: np.random.Generator, label: int, size: int = 48, contrast: float = 0.3,
               radius: Tuple[float, float] = (1.5, 3.0), noise: float = 0.03) -> np.ndarray:
    """One ``(size, size)`` float64 film in [0, 1], rows top to bottom (apex to diaphragm).

    Args:
        rng: random generator.
        label: 0 normal, 1 with one lesion in a lung field.
        size: pixels per side.
        contrast: the lesion's peak brightness over the lung (the lungs are about
            0.45 darker than the mediastinum).
        radius: range of the lesion's radius (its Gaussian σ is half of it), pixels.
        noise: standard deviation of the film noise.
    """
    rows, cols = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64),
                             indexing="ij")
    s = size / 48.0
    body = _ellipse(rows, cols, (size * 0.55, size / 2), (size * 0.55, size * rng.uniform(0.44, 0.49)))
    image = 0.15 + 0.55 * body
    shift = rng.uniform(-2, 2, 2) * s
    lungs = []
    for side in (-1, 1):
        centre = (size * rng.uniform(0.42, 0.48) + shift[0], size / 2 + side * size * 0.2 + shift[1])
        semi = (size * rng.uniform(0.26, 0.31), size * rng.uniform(0.12, 0.15))
        lungs.append((centre, semi, _ellipse(rows, cols, centre, semi)))
    field = np.maximum(lungs[0][2], lungs[1][2])
    image -= rng.uniform(0.38, 0.5) * field
    period = size * rng.uniform(0.09, 0.12)
    ribs = 0.5 + 0.5 * np.cos(2 * np.pi * (rows + 0.15 * np.abs(cols - size / 2)) / period
                              + rng.uniform(0, 2 * np.pi))
    image += 0.08 * ribs * field
    image += rng.uniform(-0.06, 0.06) * (rows / size - 0.5) + rng.uniform(-0.04, 0.04) * (cols / size - 0.5)
    if label == 1:
        centre, semi, _ = lungs[int(rng.integers(2))]
        r, angle = np.sqrt(rng.uniform(0, 0.6)), rng.uniform(0, 2 * np.pi)  # inside the lung, off its edge
        spot = (centre[0] + r * semi[0] * np.sin(angle), centre[1] + r * semi[1] * np.cos(angle))
        sigma = rng.uniform(*radius) * s / 2
        image += contrast * np.exp(-((rows - spot[0]) ** 2 + (cols - spot[1]) ** 2) / (2 * sigma ** 2))
    image = ndimage.gaussian_filter(image, 0.6 * s) + rng.normal(0.0, noise, image.shape)
    return np.clip(image, 0.0, 1.0)


def _write_png(image: np.ndarray, path: Path, bits: int) -> None:
    import imageio.v3 as iio  # scikit-image's reader and writer; imported on use

    top = 2 ** bits - 1
    iio.imwrite(path, np.round(image * top).astype(np.uint16 if bits == 16 else np.uint8))


def make_radiographs(folder: PathLike, n: int = 80, size: int = 48, prevalence: float = 0.2,
                     seed: int = 0, contrast: float = 0.3, bits: int = 16,
                     noise: float = 0.03) -> List[Tuple[str, int]]:
    """Write ``n`` films and ``labels.csv`` into ``folder``.

    Args:
        folder: output folder (created).
        n: subjects.
        size: film side in pixels.
        prevalence: share of abnormal subjects (``round(n · prevalence)`` of them, at
            least one), at random positions.
        seed: random seed.
        contrast: the lesion's peak brightness (the film spans [0, 1]).
        bits: 16 (``uint16`` PNG, as radiographs are stored) or 8.
        noise: film noise standard deviation.

    Returns:
        ``(subject_id, class)`` per subject, in id order.

    Raises:
        ValueError: ``bits`` is not 8 or 16, or ``prevalence`` is not in (0, 1).
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must lie in (0, 1), got {prevalence}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, int)
    # an own stream: a permutation from default_rng(seed) is the split file's own shuffle
    chosen = np.random.default_rng([seed, 1]).permutation(n)[:max(1, round(n * prevalence))]
    labels[chosen] = 1
    rows = []
    for i, label in enumerate(labels.tolist()):
        subject = f"cxr{i:03d}"
        _write_png(radiograph(rng, label, size, contrast, noise=noise), folder / f"{subject}_image.png", bits)
        rows.append((subject, label))
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m niftykit.data.radiographs FOLDER [--n N] [--prevalence P] ...``."""
    parser = argparse.ArgumentParser(prog="python -m niftykit.data.radiographs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--prevalence", type=float, default=0.2)
    parser.add_argument("--contrast", type=float, default=0.3)
    parser.add_argument("--bits", type=int, choices=(8, 16), default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = make_radiographs(args.folder, n=args.n, size=args.size, prevalence=args.prevalence,
                            seed=args.seed, contrast=args.contrast, bits=args.bits)
    positives = sum(label for _, label in rows)
    print(f"{len(rows)} films ({positives} {CLASSES[1]}, {len(rows) - positives} {CLASSES[0]}) "
          f"and labels.csv in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
