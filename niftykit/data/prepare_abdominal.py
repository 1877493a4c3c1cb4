"""Lay out the public multi-organ abdominal CT set as ``niftykit phantoms`` does.

The 90 cases of Gibson et al. (IEEE TMI 2018) are CT images from two collections
and reference labels from Zenodo record 1169361 (see ``demos/abdominal_ct/README.md``
for the sources, their licences and what is unverified):

* TCIA Pancreas-CT: DICOM series, one folder per patient ``PANCREAS_<NNNN>``;
* BTCV (Synapse "Abdomen" ``RawData``): NIfTI ``img<NNNN>.nii.gz``;
* Zenodo: ``label_tcia_multiorgan/label<NNNN>.nii.gz``,
  ``label_btcv_multiorgan/label<NNNN>.nii.gz`` and ``cropping.csv`` (columns ``id,
  publisher, original_id, extent_left ... extent_sup``).

A case is a row of ``cropping.csv``: its ``publisher`` picks the source (the ``crop``
rule), its ``original_id`` (a number) picks the image and label whose rule captures
the same number. Each rule is a regular expression searched (case-insensitive) in a
candidate's path relative to the folder given, ``/``-separated, whose first group is
the number (the path starts with the given folder's own name, so that a label folder
can be given itself); :data:`RULES` are the defaults, and ``--match SOURCE.KIND=REGEX`` replaces
one. Image candidates are NIfTI files and folders holding ``*.dcm`` files (a DICOM
series, read with SimpleITK: ``pip install 'niftykit[sitk]'``); label candidates are
NIfTI files.

Each case ``caseNNN`` (row ``NNN`` of ``cropping.csv``, from ``case000``) is written as
``caseNNN_CT.nii.gz`` (int16 HU, rounded) and ``caseNNN_Label.nii.gz`` (uint8; codes
other than the eight organs of :data:`~niftykit.data.abdomen_paint.LABELS` set to 0
unless ``keep_all_codes``), both on the label file's grid (its affine): an image stored
in another orientation (e.g. DICOM slices in the opposite order) is permuted/flipped
onto it; any other difference is an error (or, with ``grid="label"`` and equal shapes,
the label's affine is taken for the image). ``cropping.csv`` is copied row by row with
``id`` set to the case id (extents unchanged: they index the label's array, which is
kept as stored) and ``prepared.json`` records where each case came from, how its image
was put on the label's grid, and the share of its labelled voxels inside its crop box
read as :mod:`niftykit.io.crop` reads it (a warning under 99 %). Case ids follow the
rows of ``cropping.csv``: a row left out (``skip_missing``) keeps its number free.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.data.abdomen import CROP_COLUMNS
from niftykit.data.abdomen_paint import LABELS
from niftykit.errors import DataError
from niftykit.io import read_image, write_csv, write_image, write_text
from niftykit.typing import PathLike

__all__ = ["RULES", "prepare_abdominal", "parse_rules", "to_label_grid"]

log = logging.getLogger("niftykit")

#: source -> kind -> regular expression (first group: the case number)
RULES: Dict[str, Dict[str, str]] = {
    "tcia": {"image": r"PANCREAS_(\d+)",
             "label": r"label_tcia[^/]*/(?:.*/)?label(\d+)\.nii(?:\.gz)?$",
             "crop": r"tcia|pancreas"},
    "btcv": {"image": r"(?:^|/)img(\d+)\.nii(?:\.gz)?$",
             "label": r"label_btcv[^/]*/(?:.*/)?label(\d+)\.nii(?:\.gz)?$",
             "crop": r"btcv|bcv|synapse|vanderbilt|cranial"},
}
_KINDS = ("image", "label", "crop")
#: largest distance between the corners of two grids taken as one grid, mm
GRID_TOLERANCE_MM = 0.05


@dataclass
class _Case:
    id: str
    source: str
    number: int
    row: Dict[str, str]
    image: Optional[Path] = None
    label: Optional[Path] = None


def parse_rules(overrides: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """:data:`RULES` with ``SOURCE.KIND=REGEX`` overrides applied.

    Raises:
        DataError: a malformed override, an unknown source or kind, or a bad regex.
    """
    rules = {source: dict(kinds) for source, kinds in RULES.items()}
    for text in overrides:
        key, eq, pattern = text.partition("=")
        source, dot, kind = key.strip().partition(".")
        if not eq or not dot or source not in rules or kind not in _KINDS:
            raise DataError(f"--match {text!r}: expected SOURCE.KIND=REGEX with SOURCE in "
                            f"{', '.join(rules)} and KIND in {', '.join(_KINDS)}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DataError(f"--match {text!r}: bad regular expression: {exc}") from None
        rules[source][kind] = pattern
    return rules


def _candidates(roots: Sequence[PathLike], folders: bool) -> List[Tuple[Path, str]]:
    """``(path, its path from the root's own name on)`` of the NIfTI files (and DICOM
    folders) under ``roots``: ``labels/label_tcia_multiorgan/label0001.nii.gz`` for
    the root ``downloads/labels``, ``label_tcia_multiorgan/label0001.nii.gz`` for the root
    ``downloads/labels/label_tcia_multiorgan``."""
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        root = root.absolute()
        for path in sorted(root.rglob("*")):
            name = path.name.lower()
            if (path.is_file() and name.endswith((".nii", ".nii.gz"))) or (
                    folders and path.is_dir() and any(path.glob("*.dcm"))):
                found.append((path, (Path(root.name) / path.relative_to(root)).as_posix()))
    return found


def _index(candidates: List[Tuple[Path, str]], rules: Mapping[str, Mapping[str, str]],
           kind: str) -> Dict[Tuple[str, int], Path]:
    """(source, number) -> path; two candidates for one key is an error."""
    found: Dict[Tuple[str, int], Path] = {}
    for path, relative in candidates:
        for source, kinds in rules.items():
            match = re.search(kinds[kind], relative, re.IGNORECASE)
            if not match:
                continue
            key = (source, int(match.group(1)))
            if key in found and found[key] != path:
                raise DataError(f"two {kind}s for {source} case {key[1]}: {found[key]} and {path}; "
                                f"move one away or narrow the rule with --match {source}.{kind}=...")
            found[key] = path
    return found


def _read_crops(path: Path, rules: Mapping[str, Mapping[str, str]]) -> List[_Case]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CROP_COLUMNS[1:] if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (expected "
                            f"{','.join(CROP_COLUMNS)})")
        rows = list(reader)
    cases = []
    for line, row in enumerate(rows, start=2):
        publisher = row["publisher"].strip()
        source = next((s for s, k in rules.items()
                       if re.search(k["crop"], publisher, re.IGNORECASE)), None)
        number = re.search(r"\d+", row["original_id"] or "")
        if source is None or number is None:
            raise DataError(f"{path} line {line}: publisher {publisher!r} / original_id "
                            f"{row['original_id']!r} matches no source; set --match SOURCE.crop=...")
        cases.append(_Case(f"case{len(cases):03d}", source, int(number.group()), row))
    return cases


def _corners(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    grid = np.array(np.meshgrid(*[[0, n - 1] for n in shape[:3]], indexing="ij")).reshape(3, -1)
    return (affine[:3, :3] @ grid).T + affine[:3, 3]


def _same_grid(a: np.ndarray, shape_a: Sequence[int], b: np.ndarray, shape_b: Sequence[int],
               tolerance: float) -> bool:
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return False
    distances = np.linalg.norm(_corners(a, shape_a) - _corners(b, shape_b), axis=1)
    spacing = np.allclose(np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0),
                          atol=1e-3)
    return bool(distances.max() <= tolerance and spacing)


def to_label_grid(array: np.ndarray, affine: np.ndarray, label_shape: Sequence[int],
                  label_affine: np.ndarray, *, grid: str = "check", what: str = "image",
                  tolerance: float = GRID_TOLERANCE_MM) -> Tuple[np.ndarray, str]:
    """``array`` ``(x, y, z)`` moved onto the label's grid, and how (``same``,
    ``reoriented`` or ``label affine``).

    Raises:
        DataError: the grids differ by more than an axis permutation/flip (and, with
            ``grid="label"``, the shapes differ too).
    """
    from nibabel.orientations import (
        apply_orientation,
        inv_ornt_aff,
        io_orientation,
        ornt_transform,
    )
    if _same_grid(affine, array.shape, label_affine, label_shape, tolerance):
        return array, "same"
    ornt = ornt_transform(io_orientation(affine), io_orientation(label_affine))
    moved = apply_orientation(array, ornt)
    moved_affine = affine @ inv_ornt_aff(ornt, array.shape)
    if _same_grid(moved_affine, moved.shape, label_affine, label_shape, tolerance):
        return np.ascontiguousarray(moved), "reoriented"
    if grid == "label" and tuple(array.shape[:3]) == tuple(label_shape[:3]):
        log.warning("%s: grid differs from its label's; taking the label's affine (--grid label)",
                    what)
        return array, "label affine"
    gap = np.abs(_corners(moved_affine, moved.shape) - _corners(label_affine, label_shape)).max() \
        if moved.shape == tuple(label_shape[:3]) else None
    how = f"corners up to {gap:.3g} mm apart" if gap is not None else \
        f"shapes {tuple(moved.shape)} and {tuple(label_shape[:3])}"
    raise DataError(f"{what} and its label are not on one grid ({how}, even after reorienting); "
                    "check the pairing, or pass --grid label to take the label's affine when "
                    "the shapes agree")


def _pair(cases: List[_Case], images: Dict[Tuple[str, int], Path],
          labels: Dict[Tuple[str, int], Path], skip_missing: bool) -> List[_Case]:
    """The cases with both files; a missing file is an error unless ``skip_missing``."""
    kept, missing = [], []
    for case in cases:
        case.image, case.label = images.get((case.source, case.number)), labels.get(
            (case.source, case.number))
        absent = [kind for kind, path in (("image", case.image), ("label", case.label))
                  if path is None]
        if absent:
            missing.append(f"{case.source} {case.number:04d} ({' and '.join(absent)})")
        else:
            kept.append(case)
    if missing and not skip_missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"no file found for {', '.join(missing[:5])}{more}; check --images/"
                        "--labels and the naming rules (--match), or pass --skip-missing")
    for text in missing:
        log.warning("left out: %s", text)
    return kept


def _write_case(case: _Case, out: Path, keep_all_codes: bool, grid: str,
                overwrite: bool) -> Dict[str, object]:
    label = read_image(case.label, "label")
    image = read_image(case.image, "image")
    codes = label.array[..., 0]
    ct, how = to_label_grid(image.array[..., 0], image.affine, codes.shape, label.affine,
                            grid=grid, what=str(case.image))
    ct = np.clip(np.rint(ct), -32768, 32767).astype(np.int16)
    zeroed = 0
    if not keep_all_codes:
        other = ~np.isin(codes, list(LABELS)) & (codes != 0)
        zeroed = int(other.sum())
        codes = np.where(other, 0, codes)
    dtype = np.uint8 if codes.min() >= 0 and codes.max() <= 255 else np.int16
    inside = _inside_box(codes, case)
    write_image(ct, label.affine, out / f"{case.id}_CT.nii.gz", overwrite=overwrite)
    write_image(codes.astype(dtype), label.affine, out / f"{case.id}_Label.nii.gz",
                overwrite=overwrite)
    log.info("%s: %s %04d, %s (%s)%s", case.id, case.source, case.number,
             "x".join(map(str, codes.shape)), how,
             f", {zeroed} voxels of other codes set to 0" if zeroed else "")
    return {"id": case.id, "source": case.source, "original_id": case.row["original_id"],
            "image": str(case.image), "label": str(case.label), "grid": how,
            "other_codes_zeroed": zeroed, "labelled_inside_box": inside}


def _inside_box(codes: np.ndarray, case: _Case) -> Optional[float]:
    """The share of labelled voxels inside the case's crop box, read as niftykit reads it
    (half-open voxel bounds along the stored axes 0, 1, 2; :mod:`niftykit.io.crop`); a
    warning when the box leaves the array or holds under 99 % of them (another convention)."""
    try:
        bounds = [int(float(case.row[c])) for c in CROP_COLUMNS[3:]]
    except ValueError:
        log.warning("%s: crop extents %s are not numbers", case.id,
                    [case.row[c] for c in CROP_COLUMNS[3:]])
        return None
    box = tuple(slice(bounds[2 * i], bounds[2 * i + 1]) for i in range(3))
    if any(b.start < 0 or b.stop > n or b.start >= b.stop for b, n in zip(box, codes.shape)):
        log.warning("%s: crop box %s lies outside the label array %s", case.id, bounds,
                    codes.shape)
        return None
    total = int(np.count_nonzero(codes))
    share = float(np.count_nonzero(codes[box]) / total) if total else 1.0
    if share < 0.99:
        log.warning("%s: only %.1f %% of the labelled voxels lie inside its crop box %s; check "
                    "the extents' convention (demos/abdominal_ct/README.md)", case.id,
                    100 * share, bounds)
    return round(share, 6)


def prepare_abdominal(images: Sequence[PathLike], labels: Sequence[PathLike], crops: PathLike,
                      out: PathLike, *, rules: Sequence[str] = (), keep_all_codes: bool = False,
                      skip_missing: bool = False, grid: str = "check",
                      overwrite: bool = False) -> List[Dict[str, object]]:
    """Write the cases of ``crops`` (see the module docstring); returns their records.

    Args:
        images: folders searched recursively for CT images (NIfTI files, DICOM folders).
        labels: folders searched recursively for the label files.
        crops: the Zenodo ``cropping.csv``.
        out: the output folder.
        rules: ``SOURCE.KIND=REGEX`` overrides of :data:`RULES`.
        keep_all_codes: keep label codes other than the eight organs.
        skip_missing: leave out cases without an image or label (else an error).
        grid: ``check`` or ``label`` (see :func:`to_label_grid`).
        overwrite: replace existing outputs.

    Raises:
        DataError: a missing or ambiguous file, a bad rule, a grid mismatch, or outputs
            that exist without ``overwrite``.
    """
    table = parse_rules(rules)
    out = Path(out)
    cases = _read_crops(Path(crops), table)
    cases = _pair(cases, _index(_candidates(images, True), table, "image"),
                  _index(_candidates(labels, False), table, "label"), skip_missing)
    if not cases:
        raise DataError(f"no case of {crops} has both an image and a label")
    targets = [out / f"{c.id}_{kind}.nii.gz" for c in cases for kind in ("CT", "Label")]
    existing = [p for p in targets + [out / "cropping.csv"] if p.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists; choose another --out or pass --overwrite")
    records = [_write_case(case, out, keep_all_codes, grid, overwrite) for case in cases]
    rows = [[case.id, *(case.row[c] for c in CROP_COLUMNS[1:])] for case in cases]
    write_csv(out / "cropping.csv", rows, header=CROP_COLUMNS, overwrite=overwrite)
    manifest = {"generator": "niftykit prepare-abdominal", "crops": str(crops),
                "rules": table, "keep_all_codes": keep_all_codes, "cases": records}
    write_text(out / "prepared.json", json.dumps(manifest, indent=1) + "\n", overwrite=True)
    log.info("wrote %d cases, cropping.csv and prepared.json to %s", len(records), out)
    return records
