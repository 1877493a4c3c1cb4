"""One model against an ensemble of three (issue 8, point 5): Dice on held-out subjects.

Lakhani & Sundaram (Radiology 284(2):574-582, 2017) fused two CNNs by averaging their
probabilities; Zhao et al. (Medical Image Analysis 43:98-111, 2018) fused three by
voting. This measures what ``niftykit infer --model A --model B --model C`` gives over
its members on generated data, through the real command line:

- data: ``make_shapes`` (a ball, label 1, and a box, label 2, in noise; 1 x 1.2 x 1.5 mm
  voxels, rotated), ``--train`` subjects for training (seed 11) and ``--test`` held-out
  subjects generated apart (seed 12), all ``--size``^3 voxels;
- models: ``configs/quickstart.yaml`` (3-level U-Net, 16^3 windows, Dice loss, Adam
  1e-3) trained ``--iters`` iterations, no validation, once per ``system.seed`` in
  ``--seeds`` (initialisation and window sampling differ), each exported;
- inference: each export alone, then the ensemble with ``--fusion mean`` and with
  ``--fusion vote`` (equal weights), all on the held-out images (``--input``);
- score: Dice of labels 1 and 2 per held-out subject against its reference, mean and
  standard deviation over subjects.

Run: ``.venv/bin/python benchmarks/bench_ensemble.py`` (about 1-2 minutes on 2 shared
cores with the defaults; ``--out DIR`` keeps the runs, default a temporary folder).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from niftykit.cli import main as niftykit  # noqa: E402
from niftykit.data import make_shapes  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
LABELS = (1, 2)
POSTFIX = "_niftynet_out.nii.gz"


def _run(*argv: str) -> None:
    if niftykit(list(argv)) != 0:
        raise SystemExit(f"niftykit {' '.join(argv)} failed")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / total) if total else 1.0


def _scores(folder: Path, test: Path) -> Dict[int, List[float]]:
    """Dice per label, one value per held-out subject."""
    scores: Dict[int, List[float]] = {label: [] for label in LABELS}
    for reference in sorted(test.glob("*_label.nii.gz")):
        sid = reference.name[: -len("_label.nii.gz")]
        truth = np.asarray(nib.load(str(reference)).dataobj)
        found = np.asarray(nib.load(str(folder / f"{sid}{POSTFIX}")).dataobj)
        for label in LABELS:
            scores[label].append(_dice(truth == label, found == label))
    return scores


def _row(name: str, scores: Dict[int, List[float]]) -> str:
    cells = [f"{np.mean(scores[k]):.3f} ± {np.std(scores[k]):.3f}" for k in LABELS]
    both = np.mean([np.mean(scores[k]) for k in LABELS])
    return f"| {name} | {' | '.join(cells)} | {both:.3f} |"


def bench(root: Path, n_train: int, n_test: int, size: int, iters: int,
          seeds: Sequence[int]) -> List[str]:
    """Train, export, infer and score; returns the table's lines."""
    data, test = root / "data", root / "test"
    make_shapes(data, n_subjects=n_train, shape=(size,) * 3, seed=11)
    make_shapes(test, n_subjects=n_test, shape=(size,) * 3, seed=12)
    images = [str(p) for p in sorted(test.glob("*_image.nii.gz"))]
    exports, rows = [], {}
    for seed in seeds:
        model = root / f"model_seed{seed}"
        common = ["-c", str(CONFIG), "--set", f"inputs.image.path_to_search={data}",
                  "--set", f"inputs.label.path_to_search={data}",
                  "--set", f"system.model_dir={model}", "--set", f"system.seed={seed}"]
        tic = time.perf_counter()
        _run("train", *common, "--max_iter", str(iters), "--save_every_n", "0",
             "--validation_every_n", "-1",
             "--set", "training.exclude_fraction_for_validation=0",
             "--set", "training.exclude_fraction_for_inference=0")
        _run("export", *common)
        exports.append(str(model / "export"))
        _run("infer", "--model", exports[-1], "--input", *images,
             "--out", str(root / f"single{seed}"))
        rows[f"single model, seed {seed}"] = _scores(root / f"single{seed}", test)
        print(f"seed {seed}: trained, exported, inferred in {time.perf_counter() - tic:.0f}s",
              flush=True)
    members = [arg for folder in exports for arg in ("--model", folder)]
    for fusion in ("mean", "vote"):
        _run("infer", *members, "--fusion", fusion, "--input", *images,
             "--out", str(root / f"ensemble_{fusion}"))
        rows[f"ensemble of {len(seeds)}, {fusion}"] = _scores(root / f"ensemble_{fusion}", test)
    singles = [v for k, v in rows.items() if k.startswith("single")]
    average = {k: [float(np.mean([s[k][i] for s in singles])) for i in range(n_test)]
               for k in LABELS}
    table = ["| model | Dice ball (1) | Dice box (2) | mean |", "|---|---|---|---|"]
    table += [_row(name, scores) for name, scores in rows.items()]
    table.append(_row("single models, averaged", average))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10, help="training subjects")
    parser.add_argument("--test", type=int, default=8, help="held-out subjects")
    parser.add_argument("--size", type=int, default=24, help="volume size (voxels per axis)")
    parser.add_argument("--iters", type=int, default=80, help="training iterations per model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.getLogger("niftykit").setLevel(logging.WARNING)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_ensemble-") as tmp:
        root = args.out or Path(tmp)
        table = bench(root, args.train, args.test, args.size, args.iters, args.seeds)
    print(f"\n{args.train} training and {args.test} held-out make_shapes subjects "
          f"({args.size}^3), quickstart U-Net, {args.iters} iterations per model; Dice mean ± "
          f"sd over held-out subjects; {time.perf_counter() - tic:.0f}s in all\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
