"""The abdominal CT reproduction, CPU-sized: phantoms -> train -> infer -> evaluate -> table.

``make demo`` runs it (``python demos/abdominal_ct/run_demo.py --help`` for the knobs).

It runs the protocol of ``configs/abdominal_seg.yaml`` (Gibson et al., IEEE TMI 2018, as
NiftyNet's model zoo shipped it: dense V-network, rib-cage crop, resize sampling, Dice-hinge
loss, Adam at 0.001) through the ``niftykit`` command line, with a schedule a 2-core CPU
finishes in about a quarter of an hour instead of the paper's (a GPU, 144^3 windows, batches of
6, 3001 iterations). Every difference is a command-line override of that config, printed at
the start; nothing else changes. Steps:

1. ``niftykit phantoms``: synthetic abdominal CTs with the public label codes and rib-cage
   boxes (``cropping.csv``) in ``runs/abdominal/data`` (kept and reused when they match);
2. ``niftykit train`` on 80 % of them, 3. ``niftykit infer`` on the held-out 20 %,
4. ``niftykit evaluate`` (Dice, HD95, mean surface distance per organ), 5. the per-organ Dice
   beside the paper's (its cross-validation on 90 real CTs) and ``niftykit report``
   (``runs/abdominal/model/report/index.html``).

Synthetic phantoms are not the paper's data: the table shows the pipeline works end to end,
not that the paper's numbers are reproduced. ``--help`` lists the schedule's knobs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "abdominal_seg.yaml"
OUT = ROOT / "runs" / "abdominal"

#: code -> (organ, mean Dice of the dense V-network in Gibson et al. 2018, cross-validation)
PAPER = {1: ("spleen", 0.95), 3: ("left kidney", 0.93), 4: ("gallbladder", 0.73),
         5: ("esophagus", 0.71), 6: ("liver", 0.95), 7: ("stomach", 0.87), 11: ("pancreas", 0.75),
         14: ("duodenum", 0.63)}
#: the protocol's values (configs/abdominal_seg.yaml) that the CPU schedule changes
PROTOCOL = {"window": 144, "batch_size": 6, "max_iter": 3001, "precision": "float32",
            "lr_schedule": "constant"}


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The abdominal CT reproduction, CPU-sized: phantoms "
                                     "-> train -> infer -> evaluate -> per-organ Dice beside the paper's.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="phantoms in OUT/data, the run in OUT/model")
    parser.add_argument("--n", type=int, default=20, help="phantom cases (80 %% train, 20 %% held out)")
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 128, 48], metavar=("X", "Y", "Z"),
                        help="phantom voxels (about 3 mm in-plane, 5 mm slices)")
    parser.add_argument("--seed", type=int, default=0, help="phantom and training seed")
    parser.add_argument("--window", type=int, default=80, help="resize window side (paper 144; multiple of 8)")
    parser.add_argument("--batch_size", type=int, default=2, help="paper 6")
    parser.add_argument("--max_iter", type=int, default=1500, help="paper 3001")
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=("float32", "mixed_bfloat16"), help="paper float32")
    parser.add_argument("--lr_schedule", default="cosine", choices=("constant", "cosine", "polynomial"),
                        help="learning rate from 0.001 down to 0 at max_iter (paper: constant)")
    parser.add_argument("--log_every_n", type=int, default=25, help="training progress line period")
    return parser.parse_args(argv)


def _overrides(args: argparse.Namespace) -> List[str]:
    """The config changes: where the demo's files go, then the CPU schedule."""
    data, window = args.out / "data", [args.window] * 3
    where = [f"inputs.{name}.{key}={value}" for name in ("ct", "label") for key, value in
             (("path_to_search", data), ("crop_box_file", data / "cropping.csv"),
              ("spatial_window_size", window))]
    schedule = [f"network.batch_size={args.batch_size}", f"training.max_iter={args.max_iter}",
                f"network.precision={args.precision}", f"training.lr_schedule={args.lr_schedule}",
                f"training.save_every_n={args.max_iter}",
                f"training.log_every_n={args.log_every_n}", f"system.seed={args.seed}",
                f"system.model_dir={args.out / 'model'}"]
    return [item for pair in (("--set", value) for value in where + schedule) for item in pair]


def _print_schedule(args: argparse.Namespace) -> None:
    n_held = max(1, round(0.2 * args.n))
    rows = [("resize window (inputs.*.spatial_window_size)", f"{PROTOCOL['window']}^3", f"{args.window}^3"),
            ("network.batch_size", PROTOCOL["batch_size"], args.batch_size),
            ("training.max_iter", PROTOCOL["max_iter"], args.max_iter),
            ("network.precision", PROTOCOL["precision"], args.precision),
            ("training.lr_schedule (from lr 0.001)", PROTOCOL["lr_schedule"], args.lr_schedule),
            ("data", "90 CTs, 9-fold cross-validation",
             f"{args.n} phantoms {'x'.join(map(str, args.shape))}: ~{args.n - n_held} train, ~{n_held} held out")]
    print("CPU-sized schedule of the protocol in configs/abdominal_seg.yaml; what differs:")
    print(f"  {'':<48} {'paper / zoo':<34} this demo")
    for key, paper, demo in rows:
        print(f"  {key:<48} {str(paper):<34} {demo}")
    print("  unchanged: dense_vnet with the paper's params, rib-cage crop, ARS, CT window, resize "
          "sampling,\n  DiceHinge, Adam lr 0.001, affine augmentation, label codes -> 0..8\n")


def _phantoms(args: argparse.Namespace) -> None:
    """Generate the phantoms unless the folder holds exactly this set already."""
    from niftykit.data.abdomen import make_abdominal_phantoms

    data = args.out / "data"
    manifest = data / "phantoms.json"
    if manifest.exists():
        info = json.loads(manifest.read_text())
        if (info.get("n"), info.get("seed"), info.get("shape")) == (args.n, args.seed, list(args.shape)):
            print(f"reusing {args.n} phantoms in {data}")
            return
    for stale in [*data.glob("case*_CT.nii.gz"), *data.glob("case*_Label.nii.gz")]:
        stale.unlink()   # another set's cases would join this one's
    print(f"generating {args.n} phantoms ({'x'.join(map(str, args.shape))}) in {data}")
    make_abdominal_phantoms(data, args.n, args.seed, args.shape, overwrite=True,
                            progress=lambda line: print("  " + line, flush=True))


def _dice_table(csv_path: Path) -> Dict[int, Tuple[float, float, float, int]]:
    """code -> (mean Dice, mean HD95 mm, mean surface distance mm, cases) from evaluation.csv."""
    rows: Dict[int, List[Tuple[float, float, float]]] = {}
    with csv_path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            values = tuple(float(row.get(key, "nan") or "nan")
                           for key in ("dice", "hausdorff95", "average_distance"))
            rows.setdefault(int(row["label"]), []).append(values)  # type: ignore[arg-type]
    return {code: (*(sum(v[i] for v in vals) / len(vals) for i in range(3)), len(vals))  # type: ignore[misc]
            for code, vals in rows.items()}


def _print_table(table: Dict[int, Tuple[float, float, float, int]]) -> None:
    cases = max((n for *_, n in table.values()), default=0)
    print(f"\nper-organ mean over {cases} held-out phantoms, beside Gibson et al. 2018 (dense "
          "V-network, cross-validation on 90 real CTs):")
    print(f"  {'organ':<12} {'code':>4}  {'Dice':>6}  {'HD95 mm':>8}  {'ASD mm':>7}   {'paper Dice':>10}")
    ours, theirs = [], []
    for code, (organ, paper) in PAPER.items():
        dice, hd95, asd, _ = table.get(code, (float("nan"),) * 3 + (0,))
        ours.append(dice)
        theirs.append(paper)
        print(f"  {organ:<12} {code:>4}  {dice:>6.3f}  {hd95:>8.1f}  {asd:>7.2f}   {paper:>10.2f}")
    print(f"  {'mean':<12} {'':>4}  {sum(ours) / len(ours):>6.3f}  {'':>8}  {'':>7}   "
          f"{sum(theirs) / len(theirs):>10.2f}")


def _report(niftykit, overrides: List[str], model: Path) -> Optional[Path]:
    """``niftykit report``: the HTML report of the run; its index.html, or None if it failed."""
    print(f"\n$ niftykit report -c {CONFIG.relative_to(ROOT)} <overrides above>", flush=True)
    status = niftykit(["report", "-c", str(CONFIG), *overrides])
    if status:
        print(f"niftykit report exited with status {status}")
        return None
    return model / "report" / "index.html"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    if args.window % 8:
        print(f"--window {args.window}: the dense V-network needs a multiple of 8", file=sys.stderr)
        return 2
    from niftykit.cli import main as niftykit

    start = time.perf_counter()
    _print_schedule(args)
    overrides = _overrides(args)
    for stale in ("dataset_split.csv", "histogram_ref_file.txt"):   # a fresh run: new split, new codes
        (args.out / "model" / stale).unlink(missing_ok=True)
    steps = [("phantoms", None), ("train", ["--overwrite"]), ("infer", ["--overwrite"]),
             ("evaluate", ["--overwrite"])]
    for number, (name, extra) in enumerate(steps, start=1):
        tic = time.perf_counter()
        print(f"\n[{number}/{len(steps) + 1}] {name} (elapsed {time.perf_counter() - start:.0f} s)", flush=True)
        if extra is None:
            _phantoms(args)
            continue
        print(f"$ niftykit {name} -c {CONFIG.relative_to(ROOT)} {' '.join(extra)} <overrides above>", flush=True)
        status = niftykit([name, "-c", str(CONFIG), *extra, *overrides])
        if status:
            return status
        print(f"  {name} took {time.perf_counter() - tic:.0f} s", flush=True)
    print(f"\n[{len(steps) + 1}/{len(steps) + 1}] results")
    model = args.out / "model"
    _print_table(_dice_table(model / "evaluation" / "evaluation.csv"))
    report = _report(niftykit, overrides, model)
    minutes = (time.perf_counter() - start) / 60
    print(f"\nabdominal demo finished in {minutes:.1f} min (CPU-sized schedule: see the top)")
    print(f"  phantoms + cropping.csv: {args.out / 'data'}")
    print(f"  checkpoints:             {model / 'models'}")
    print(f"  TensorBoard:             tensorboard --logdir {model / 'logs'}")
    print(f"  segmentations:           {model / 'segmentation'}")
    print(f"  per case and organ:      {model / 'evaluation' / 'evaluation.csv'}")
    if report is not None:
        print(f"  report:                  {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
