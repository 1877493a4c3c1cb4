"""The quickstart demo: generate data, train, infer, evaluate, print where everything is.

Run with ``make demo`` (or ``python demos/quickstart.py`` inside the venv).
Uses ``configs/quickstart.yaml``; the data and model go to ``runs/quickstart/``.
A second run starts afresh (``--overwrite``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "quickstart.yaml"
RUN = ROOT / "runs" / "quickstart"


def main() -> int:
    from niftykit.cli import main as niftykit
    from niftykit.data import make_shapes

    data = RUN / "data"
    if not any(data.glob("*_image.nii.gz")):
        print(f"generating 10 subjects (24x24x24) in {data}")
        make_shapes(data, n_subjects=10, shape=(24, 24, 24), seed=0)
    tic = time.perf_counter()
    for command in (["train", "--overwrite"], ["infer", "--overwrite"], ["evaluate", "--overwrite"]):
        print(f"\n$ niftykit {command[0]} -c {CONFIG.relative_to(ROOT)}")
        status = niftykit([command[0], "-c", str(CONFIG), *command[1:]])
        if status:
            return status
    print(f"\nquickstart finished in {time.perf_counter() - tic:.0f} s")
    print(f"  data:          {data}")
    print(f"  checkpoints:   {RUN / 'model' / 'models'}")
    print(f"  TensorBoard:   tensorboard --logdir {RUN / 'model' / 'logs'}")
    print(f"  segmentations: {RUN / 'model' / 'segmentation'}")
    print(f"  Dice per case: {RUN / 'model' / 'evaluation' / 'evaluation.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
