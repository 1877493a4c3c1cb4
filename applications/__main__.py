"""``python -m applications <example> [folder]``: write an example's small data set.

The folder defaults to where ``configs/example_<example>.yaml`` looks,
``runs/example_<example>/data``; the commands to run next are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from applications import EXAMPLES

ROOT = Path(__file__).resolve().parents[1]


def write_data(example: str, folder: Path, overwrite: bool = False) -> List[Path]:
    """The example's data set in ``folder``; returns the image files."""
    if example == "lesion_volume":
        from applications.lesion_volume import make_lesions
        return make_lesions(folder, overwrite=overwrite)
    from niftykit.data import make_shapes  # ball and box: segmented, or autoencoded
    count = 40 if example == "autoencoder" else 8  # a VAE needs more images to generalise
    return make_shapes(folder, n_subjects=count, shape=(16, 16, 16), overwrite=overwrite)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m applications", description=__doc__)
    parser.add_argument("example", choices=sorted(EXAMPLES))
    parser.add_argument("folder", nargs="?", type=Path, help="default: runs/example_<example>/data")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    args = parser.parse_args(argv)
    folder = args.folder or ROOT / "runs" / f"example_{args.example}" / "data"
    images = write_data(args.example, folder, args.overwrite)
    config = EXAMPLES[args.example][1]
    print(f"wrote {len(images)} subjects to {folder}; next, from {ROOT}:")
    commands = [("train", ""), ("infer", ""), ("evaluate", "")]
    if args.example == "autoencoder":  # no references to evaluate against
        commands[1:] = [("infer", f" --set autoencoder.inference_type={kind} --set "
                                  f"inference.save_seg_dir={kind}")
                        for kind in ("encode", "encode-decode", "sample")]
    for command, extra in commands:
        print(f"  python -m niftykit {command} -c {config}{extra}")
    if args.folder:
        print("  (add --set inputs.<section>.path_to_search=FOLDER for each input section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
