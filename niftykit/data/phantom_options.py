"""The ``niftykit phantoms`` options, importable without numpy so that ``niftykit --help``
stays instant; the generator is :mod:`niftykit.data.abdomen`."""

from __future__ import annotations

import argparse

__all__ = ["DEFAULT_SHAPE", "PHANTOMS_HELP", "add_phantom_arguments"]

#: voxels per case (x, y, z); the spacing follows the field of view, as on a scanner
DEFAULT_SHAPE = (192, 192, 80)

PHANTOMS_HELP = ("Write synthetic abdominal CT cases (int16 HU) with 8-organ labels "
                 "(1 spleen, 3 left kidney, 4 gallbladder, 5 esophagus, 6 liver, 7 stomach, "
                 "11 pancreas, 14 duodenum), cropping.csv and phantoms.json.")


def add_phantom_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``niftykit phantoms`` options, added to ``parser``."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--n", type=int, default=10, help="number of cases (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), default=list(DEFAULT_SHAPE),
                        help="voxels per case (default %(default)s; 64 64 24 for a quick set)")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"),
                        help="fixed voxel size in mm (default: field of view / shape, per case)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    return parser
