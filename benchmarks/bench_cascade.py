"""Issue 8 (2): a coarse-to-fine cascade against one network at stage 2's resolution, same budget.

Data: ``make_abdominal_phantoms(data, 12, seed=0, shape=(96, 96, 40))`` (synthetic abdominal CT,
about 4 × 4 × 6 mm voxels, eight storage orientations, small oblique turns) and, per case, a
binary label of one small organ (default the gallbladder, code 4: 300–500 voxels of 370 k;
``--organ pancreas`` for code 11), ``<id>_gallbladder.nii.gz``. The split (8 training, 4
inference) is the same file for both runs.

- cascade: ``configs/method_cascade.yaml`` as shipped (``application: cascade``, input cascade):
  stage 1 a 3-level U-Net (8/16/32 features) at 8 × 8 × 12 mm for ``--stage1-iter`` iterations,
  stage 2 the same U-Net at 4 × 4 × 6 mm for ``--stage2-iter`` iterations, windows 32 × 32 × 16
  (balanced over the two classes) inside stage 1's region, stage 1's probability as a second
  channel;
- region: the same with ``cascade_mode: region`` (stage 2 sees the region's image only, no
  probability channel, as in Roth et al.'s cascade);
- single: the same config as ``application: segmentation`` (the ``cascade`` section's
  segmentation keys), the same U-Net at 4 × 4 × 6 mm for ``--stage1-iter + --stage2-iter``
  iterations: the same number of steps on windows of the same size, so the same training budget.

Both are trained, inferred (Gaussian blending, overlap 0.5) and evaluated by ``niftykit.cli.main``
in this process; the Dice and the 95th-percentile Hausdorff distance (mm) of each
inference case are read from ``evaluation.csv``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_cascade.py                  # about 7 minutes on 2 cores
    .venv/bin/python benchmarks/bench_cascade.py --data-only      # the data of the shipped config
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from niftykit.cli import main  # noqa: E402
from niftykit.config.apps import SegmentationConfig  # noqa: E402
from niftykit.data.abdomen import make_abdominal_phantoms  # noqa: E402
from niftykit.io import read_image, write_image  # noqa: E402

CONFIG = ROOT / "configs" / "method_cascade.yaml"
ORGANS = {"gallbladder": 4, "pancreas": 11}


def make_data(folder: Path, n: int, organ: str) -> None:
    """Phantoms and one binary ``<id>_<organ>.nii.gz`` label per case (on the CT's grid)."""
    make_abdominal_phantoms(folder, n, 0, (96, 96, 40), overwrite=True)
    for path in sorted(folder.glob("*_Label.nii.gz")):
        label = read_image(path, kind="label")
        binary = (label.array[..., 0] == ORGANS[organ]).astype(np.uint8)
        write_image(binary, label.affine, folder / path.name.replace("_Label", f"_{organ}"),
                    overwrite=True)


def write_configs(out: Path, data: Path, organ: str, stage1: int, stage2: int) -> Dict[str, Path]:
    """The shipped cascade config, as is and with ``cascade_mode: region``, and the
    single-network config of the same budget."""
    cascade = yaml.safe_load(CONFIG.read_text())
    for name in ("ct", "label"):
        cascade["inputs"][name]["path_to_search"] = str(data)
    cascade["inputs"]["label"]["filename_contains"] = [f"_{organ}"]
    cascade["system"]["dataset_split_file"] = str(out / "dataset_split.csv")
    cascade["training"]["max_iter"] = stage2
    cascade["cascade"]["stage1_max_iter"] = stage1
    region = yaml.safe_load(yaml.safe_dump(cascade))
    region["cascade"]["cascade_mode"] = "region"
    single = yaml.safe_load(yaml.safe_dump(cascade))
    single["application"] = "segmentation"
    keys = {f for f in SegmentationConfig.__dataclass_fields__}
    single["segmentation"] = {k: v for k, v in single.pop("cascade").items() if k in keys}
    single["training"]["max_iter"] = stage1 + stage2
    paths = {}
    for name, config in (("cascade", cascade), ("region", region), ("single", single)):
        config["system"]["model_dir"] = str(out / name)
        paths[name] = out / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(config, sort_keys=False))
    return paths


def scores_of(model_dir: Path, metric: str) -> Dict[str, float]:
    with (model_dir / "evaluation" / "evaluation.csv").open(newline="") as handle:
        return {row["subject_id"]: float(row[metric]) for row in csv.DictReader(handle)}


def run(config: Path) -> float:
    tic = time.perf_counter()
    for command in ("train", "infer", "evaluate"):
        if main([command, "-c", str(config), "--overwrite"]) != 0:
            raise SystemExit(f"niftykit {command} -c {config} failed")
    return time.perf_counter() - tic


def parse(argv: List[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--organ", choices=sorted(ORGANS), default="gallbladder")
    parser.add_argument("--n", type=int, default=12, help="cases (a third are inferred)")
    parser.add_argument("--stage1-iter", type=int, default=400)
    parser.add_argument("--stage2-iter", type=int, default=400)
    parser.add_argument("--data-only", action="store_true",
                        help="write runs/method_cascade/data (the shipped config's) and stop")
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, out: Path) -> None:
    data = out / "data"
    make_data(data, args.n, args.organ)
    configs = write_configs(out, data, args.organ, args.stage1_iter, args.stage2_iter)
    seconds = {name: run(path) for name, path in configs.items()}
    scores = {name: scores_of(out / name, "dice") for name in configs}
    distances = {name: scores_of(out / name, "hausdorff95") for name in configs}
    print(f"\n{args.organ}, {args.n} cases ({len(scores['cascade'])} inferred), "
          f"budget {args.stage1_iter + args.stage2_iter} iterations of 4 x 32x32x16 windows")
    print(f"{'subject':10s}" + "".join(f" {name:>8s}" for name in configs))
    for subject in sorted(scores["cascade"]):
        print(f"{subject:10s}" + "".join(f" {scores[name][subject]:8.3f}" for name in configs))
    for name in configs:
        values = list(scores[name].values())
        far = list(distances[name].values())
        print(f"{name:8s} mean Dice {np.mean(values):.3f} (sd {np.std(values):.3f}), "
              f"mean Hausdorff95 {np.mean(far):.1f} mm, "
              f"train + infer + evaluate {seconds[name]:.0f} s")


def run_main(argv: List[str] | None = None) -> int:
    args = parse(argv)
    if args.data_only:
        make_data(ROOT / "runs" / "method_cascade" / "data", args.n, args.organ)
        return 0
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        bench(args, args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_cascade_") as folder:
        bench(args, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(run_main())
