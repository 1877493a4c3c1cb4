"""Scoring segmentation files against references and writing the table as CSV."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from niftykit.errors import DataError
from niftykit.evaluation.metrics import dice_per_label
from niftykit.io import check_same_grid, read_image, write_csv
from niftykit.typing import PathLike

__all__ = ["evaluate_segmentations", "summarise"]

CSV_HEADER = ("subject_id", "label", "dice")


def _format(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6f}"


def evaluate_segmentations(
    pairs: Sequence[tuple[str, PathLike, PathLike]],
    labels: Sequence[int],
    out_csv: PathLike,
    *,
    overwrite: bool = True,
) -> list[dict]:
    """Dice per subject and label, written to a CSV.

    The CSV (written atomically) has the header ``subject_id,label,dice`` and
    one row per subject and label, Dice with 6 decimals or ``nan`` when the
    label is in neither volume.

    Args:
        pairs: ``(subject_id, segmentation file, reference file)`` triples.
        labels: label values to score.
        out_csv: destination table.
        overwrite: replace an existing table.

    Returns:
        The rows as dicts ``{"subject_id": str, "label": int, "dice": float}``.

    Raises:
        ImageError: a file cannot be read, holds non-integral labels, or a
            segmentation and its reference are not on the same grid.
        DataError: ``out_csv`` exists and ``overwrite`` is False.
    """
    if not overwrite and Path(out_csv).exists():  # fail before the slow part
        raise DataError(f"{out_csv} exists; delete it, choose another path, or pass overwrite / --overwrite")
    rows: list[dict] = []
    for subject, seg_path, ref_path in pairs:
        seg, ref = read_image(seg_path, kind="label"), read_image(ref_path, kind="label")
        check_same_grid(seg, ref)
        for label, dice in dice_per_label(seg.array, ref.array, labels).items():
            rows.append({"subject_id": subject, "label": label, "dice": dice})
    table = ((row["subject_id"], row["label"], _format(row["dice"])) for row in rows)
    write_csv(Path(out_csv), table, header=CSV_HEADER, overwrite=overwrite)
    return rows


def summarise(rows: Sequence[Mapping]) -> dict[int, float]:
    """Mean Dice per label over subjects, ignoring NaN.

    Args:
        rows: rows from :func:`evaluate_segmentations`.

    Returns:
        Label -> mean Dice, in order of first appearance; NaN for a label
        with no finite score.
    """
    scores: dict[int, list[float]] = {}
    for row in rows:
        scores.setdefault(int(row["label"]), []).append(float(row["dice"]))
    means: dict[int, float] = {}
    for label, values in scores.items():
        finite = [v for v in values if not math.isnan(v)]
        means[label] = sum(finite) / len(finite) if finite else float("nan")
    return means
