"""Synthetic abdominal CT: a stand-in for the 90-case multi-organ set of Gibson et al.

``make_abdominal_phantoms(out, n, seed)`` writes ``n`` cases, each an int16 CT
in Hounsfield units (``<id>_CT.nii.gz``) and a uint8 label volume
(``<id>_Label.nii.gz``) with the public label codes of the Zenodo set (record
1169361): 1 spleen, 3 left kidney, 4 gallbladder, 5 oesophagus, 6 liver,
7 stomach, 11 pancreas, 14 duodenum; 0 is everything else (the right kidney too).
It also writes ``cropping.csv`` (the rib-cage box of each case) and
``phantoms.json`` (the manifest). Same seed, identical files; case ``i`` of a
seed is the same whatever ``n`` (each case has its own spawned seed).

Anatomy (:mod:`~niftykit.data.abdomen_anatomy`, :mod:`~niftykit.data.abdomen_paint`):
body wall with skin, subcutaneous fat and muscle; spine, ribs, psoas; lung
bases, heart and diaphragm; aorta, IVC, portal, splenic and mesenteric vessels;
small bowel and colon with gas, fluid and stool; the eight organs, touching
where they do. Per case: habitus, organ sizes, positions and turns, a smooth
deformation, contrast phase (non-contrast / arterial / portal venous, in
turn) and enhancement, oral contrast (1 in 5), noise (SD 8-25 HU), partial-volume blur,
storage orientation (:data:`~niftykit.data.abdomen_grid.AXCODES` in turn), small
oblique rotations, field of view and slice spacing. Outside the body and the
circular field of view the CT is exactly -1000 HU.

``cropping.csv`` columns (named as in the Zenodo ``cropping.csv``):
``id,publisher,original_id,extent_left,extent_right,extent_ant,extent_post,extent_inf,extent_sup``.
Here the six extents are **half-open voxel index bounds along the stored array
axes 0, 1 and 2** (``image[left:right, ant:post, inf:sup]`` is the crop), whatever
the storage orientation: the names are the Zenodo file's, not directions. The box
spans the rib cage transversely and, along the slices, the superior extent of
liver/spleen to the inferior extent of liver/kidneys; it is grown if needed so
that it holds every labelled voxel (oesophagus labels stop at its top, as in the
public set).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from niftykit import __version__
from niftykit.data.abdomen_case import Case, make_case
from niftykit.data.abdomen_grid import AXCODES
from niftykit.data.abdomen_paint import LABELS
from niftykit.data.abdomen_tissue import PHASES
from niftykit.errors import DataError, NiftykitError
from niftykit.io import write_csv, write_image, write_text
from niftykit.typing import PathLike
from niftykit.data.phantom_options import DEFAULT_SHAPE, PHANTOMS_HELP, add_phantom_arguments

__all__ = ["LABELS", "DEFAULT_SHAPE", "SMALL_SHAPE", "make_abdominal_phantoms", "organ_histograms",
           "separability_report", "phantoms_main"]

#: Default volume shape ``(x, y, z)``: 1.5-2.3 mm in-plane, 2.4-4 mm slices (field of view / shape).
#: A small shape for tests (about 5 mm in-plane, 10 mm slices).
SMALL_SHAPE = (64, 64, 24)
GENERATOR_VERSION = "1.0"
CROP_COLUMNS = ("id", "publisher", "original_id", "extent_left", "extent_right", "extent_ant",
                "extent_post", "extent_inf", "extent_sup")
_HU_MIN, _HU_BINS = -1024, 4096
_SHORT = {"spleen": "spleen", "left_kidney": "l.kid", "gallbladder": "gallbl", "esophagus": "esoph",
          "liver": "liver", "stomach": "stomch", "pancreas": "pancr", "duodenum": "duod"}
_RULE = ("a voxel of organ A overlaps when its HU lies inside [p{low:g}, p{high:g}] of some other organ B, "
         "the percentiles of B's voxels pooled over the set; fraction = overlapping voxels / voxels of A")


def organ_histograms(image: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per-organ HU histograms of one case.

    Returns:
        ``(len(LABELS), 4096)`` int64 counts of HU -1024..3071, one row per
        label code in :data:`LABELS` order.
    """
    values = np.clip(image.astype(np.int32), _HU_MIN, _HU_MIN + _HU_BINS - 1) - _HU_MIN
    return np.stack([np.bincount(values[label == code], minlength=_HU_BINS) for code in LABELS])


def _percentile(counts: np.ndarray, q: float) -> int:
    """Smallest HU with at least ``q`` % of the counts at or below it."""
    cumulative = np.cumsum(counts)
    return int(np.searchsorted(cumulative, q / 100.0 * cumulative[-1])) + _HU_MIN


def separability_report(histograms: np.ndarray, low: float = 1.0, high: float = 99.0) -> Dict[str, Any]:
    """How far the organs can be told apart by HU alone.

    For each organ A: the fraction of its voxels whose HU lies inside the
    ``[low, high]`` percentile range of at least one other organ (1 means no
    voxel of A has an HU that only A has); ``pairwise[A][B]`` is the fraction
    inside B's range.

    Args:
        histograms: summed :func:`organ_histograms` of a set.

    Returns:
        ``{"rule", "ranges_hu": {organ: [p_low, p_high]}, "fraction": {organ: f},
        "pairwise": {organ: {other: f}}}``; organs without voxels are left out.
    """
    names = list(LABELS.values())
    present = [k for k in range(len(names)) if histograms[k].sum() > 0]
    ranges = {k: (_percentile(histograms[k], low), _percentile(histograms[k], high)) for k in present}
    hu = np.arange(_HU_BINS) + _HU_MIN
    inside = {k: (hu >= lo) & (hu <= hi) for k, (lo, hi) in ranges.items()}
    fraction, pairwise = {}, {}
    for a in present:
        total = float(histograms[a].sum())
        others = [b for b in present if b != a]
        union = np.any([inside[b] for b in others], axis=0) if others else np.zeros(_HU_BINS, bool)
        fraction[names[a]] = round(float(histograms[a][union].sum()) / total, 4)
        pairwise[names[a]] = {names[b]: round(float(histograms[a][inside[b]].sum()) / total, 4) for b in others}
    return {"rule": _RULE.format(low=low, high=high),
            "ranges_hu": {names[k]: list(ranges[k]) for k in present},
            "fraction": fraction, "pairwise": pairwise}


def _check_arguments(n: int, seed: int, shape: Sequence[int], spacing: Optional[Sequence[float]],
                     orientations: Sequence[str]) -> None:
    if int(n) < 1:
        raise DataError(f"phantoms: --n must be at least 1, got {n}")
    if int(seed) < 0:
        raise DataError(f"phantoms: --seed must be 0 or more, got {seed}")
    if len(shape) != 3 or min(int(s) for s in shape) < 16:
        raise DataError(f"phantoms: --shape needs three sizes of at least 16 voxels, got {list(shape)}")
    if spacing is not None and (len(spacing) != 3 or min(float(s) for s in spacing) <= 0):
        raise DataError(f"phantoms: spacing needs three positive sizes in mm, got {list(spacing)}")
    unknown = [code for code in orientations if code not in AXCODES]
    if unknown or not orientations:
        raise DataError(f"phantoms: orientations {unknown or '[]'} are not among {list(AXCODES)}")


def _targets(out: Path, ids: Sequence[str]) -> List[Path]:
    files = [out / f"{i}_{kind}.nii.gz" for i in ids for kind in ("CT", "Label")]
    return files + [out / "cropping.csv", out / "phantoms.json"]


def make_abdominal_phantoms(out: PathLike, n: int, seed: int, shape: Optional[Sequence[int]] = None, *,
                            spacing: Optional[Sequence[float]] = None,
                            orientations: Sequence[str] = AXCODES, overwrite: bool = False,
                            progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Write ``n`` synthetic abdominal CT cases with labels, ``cropping.csv`` and ``phantoms.json``.

    Args:
        out: output folder (created).
        n: number of cases (ids ``case000``, ``case001``...).
        seed: random seed; the same seed (and arguments) gives byte-identical files.
        shape: ``(x, y, z)`` voxels per case (default :data:`DEFAULT_SHAPE`).
        spacing: fixed voxel size ``(x, y, z)`` in mm; None fits the field of view
            to each patient (spacing = field of view / shape, varying per case).
        orientations: storage axcodes, taken in turn (case ``i`` gets
            ``orientations[i % len(orientations)]``), among
            :data:`~niftykit.data.abdomen_grid.AXCODES`. Contrast phases are
            taken in turn too (``PHASES[i % 3]``), so any 3 consecutive cases hold all three.
        overwrite: replace existing files (otherwise any existing output is an error
            and nothing is written).
        progress: called with one line per case.

    Returns:
        The manifest written to ``phantoms.json``.

    Raises:
        DataError: bad arguments, or an output exists and ``overwrite`` is False.
    """
    shape = tuple(int(s) for s in (DEFAULT_SHAPE if shape is None else shape))
    _check_arguments(n, seed, shape, spacing, orientations)
    out = Path(out)
    ids = [f"case{i:03d}" for i in range(int(n))]
    existing = [path for path in _targets(out, ids) if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise DataError(f"{existing[0]} exists{more}; delete it, choose another --out, or pass --overwrite")
    histograms = {phase: np.zeros((len(LABELS), _HU_BINS), dtype=np.int64) for phase in PHASES}
    cases = []
    for index, (case_id, case_seed) in enumerate(zip(ids, np.random.SeedSequence(int(seed)).spawn(len(ids)))):
        start = time.perf_counter()
        case = make_case(case_seed, shape, spacing, orientations[index % len(orientations)],
                         PHASES[index % len(PHASES)])
        cases.append(_write_case(out, case_id, case, overwrite))
        histograms[case.info["phase"]] += organ_histograms(case.image, case.label)
        if progress is not None:
            progress(_progress_line(cases[-1], time.perf_counter() - start))
    rows = [[case["id"], "niftykit-phantoms", index, *case["crop"].values()] for index, case in enumerate(cases)]
    write_csv(out / "cropping.csv", rows, header=CROP_COLUMNS, overwrite=overwrite)
    manifest = {
        "generator": "niftykit.data.abdomen", "generator_version": GENERATOR_VERSION,
        "niftykit_version": __version__, "seed": int(seed), "n": int(n), "shape": list(shape),
        "spacing_mm": None if spacing is None else [float(s) for s in spacing],
        "orientations": list(orientations), "labels": {str(code): name for code, name in LABELS.items()},
        "world": "RAS+ mm (NIfTI): +x patient right, +y anterior, +z superior",
        "cropping_csv": {"columns": list(CROP_COLUMNS),
                         "extents": "half-open voxel bounds along array axes 0, 1, 2: "
                                    "image[left:right, ant:post, inf:sup]"},
        "separability": separability_report(sum(histograms.values())),
        "separability_by_phase": {phase: separability_report(h)["fraction"]
                                  for phase, h in histograms.items() if h.sum() > 0},
        "cases": cases,
    }
    write_text(out / "phantoms.json", json.dumps(manifest, indent=1) + "\n", overwrite=overwrite)
    return manifest


def _write_case(out: Path, case_id: str, case: Case, overwrite: bool) -> Dict[str, Any]:
    """Write a case's CT and labels; returns its manifest entry."""
    image, label = f"{case_id}_CT.nii.gz", f"{case_id}_Label.nii.gz"
    write_image(case.image, case.affine, out / image, overwrite=overwrite)
    write_image(case.label, case.affine, out / label, overwrite=overwrite)
    return {"id": case_id, "image": image, "label": label, "shape": list(case.image.shape), **case.info,
            "affine": np.round(case.affine, 6).tolist(), "crop": dict(zip(CROP_COLUMNS[3:], case.crop))}


def _progress_line(case: Dict[str, Any], seconds: float) -> str:
    return (f"{case['id']}: {'x'.join(map(str, case['shape']))} {case['axcodes']} "
            f"{'x'.join(f'{s:.2f}' for s in case['spacing_mm'])} mm {case['phase']} "
            f"noise {case['noise_hu']:.0f} HU ({seconds:.2f} s)")


def format_separability(report: Dict[str, Any], n: int) -> str:
    """The separability report as a table: per organ its HU range, the overlap fraction
    (``any``) and the fraction inside each other organ's range."""
    names = list(report["fraction"])
    short = [_SHORT.get(name, name[:6]) for name in names]
    lines = [f"intensity overlap over {n} case(s): {report['rule']}",
             f"  {'organ':<12} {'HU p1..p99':>13} {'any':>5}  " + " ".join(f"{s:>6}" for s in short)]
    for organ in names:
        low, high = report["ranges_hu"][organ]
        cells = [f"{report['pairwise'][organ].get(other, float('nan')):6.2f}" if other != organ else f"{'-':>6}"
                 for other in names]
        lines.append(f"  {organ:<12} {low:>6}..{high:<5} {report['fraction'][organ]:5.2f}  " + " ".join(cells))
    return "\n".join(lines)


def run_phantoms(args: argparse.Namespace) -> int:
    """Generate the set described by parsed ``args``; raises NiftykitError on bad input."""
    manifest = make_abdominal_phantoms(args.out, args.n, args.seed, args.shape, spacing=args.spacing,
                                       overwrite=args.overwrite, progress=print)
    print(format_separability(manifest["separability"], args.n))
    print(f"wrote {args.n} case(s), cropping.csv and phantoms.json to {args.out}")
    return 0


def phantoms_main(argv: Optional[Sequence[str]] = None) -> int:
    """``niftykit phantoms --out DIR --n N --seed S [--shape X Y Z] [--overwrite]``.

    Returns 0, or 2 after one line on standard error for a user error.
    """
    parser = add_phantom_arguments(argparse.ArgumentParser(prog="niftykit phantoms",
                                                           description=PHANTOMS_HELP))
    args = parser.parse_args(argv)
    try:
        return run_phantoms(args)
    except NiftykitError as exc:
        print(f"niftykit: error: {exc}", file=sys.stderr)
        return 2
