"""The dataset split: which subject is for training, validation or inference.

Same file as NiftyNet's ``dataset_split_file``: ``subject_id,phase`` rows,
no header, phase in {training, validation, inference} (case-insensitive).
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from niftykit.errors import DataError
from niftykit.io.writer import write_csv
from niftykit.typing import PathLike

__all__ = ["PHASES", "load_or_create_split", "subjects_in_phase"]

logger = logging.getLogger("niftykit")

#: The phases a subject can belong to.
PHASES = ("training", "validation", "inference")
_MAX_LISTED = 10


def _read_split(split_file: Path, known: set[str]) -> dict[str, str]:
    split: dict[str, str] = {}
    with split_file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            where = f"{split_file} line {line}"
            if len(cells) != 2:
                raise DataError(f"{where}: expected two columns 'subject_id,phase', got {row}")
            subject, phase = cells[0], cells[1].lower()
            if line == 1 and (subject.lower(), phase) == ("subject_id", "phase"):
                continue
            if phase not in PHASES:
                raise DataError(
                    f"{where}: phase {cells[1]!r} for subject {subject!r} is not one of {', '.join(PHASES)}"
                )
            if subject not in known:
                raise DataError(f"{where}: subject {subject!r} is not among the subjects found in the input sources")
            if split.get(subject, phase) != phase:
                raise DataError(f"{where}: subject {subject!r} is listed as both {split[subject]} and {phase}")
            split[subject] = phase
    return split


def _shorten(ids: list[str]) -> str:
    more = len(ids) - _MAX_LISTED
    return ", ".join(ids[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _count(fraction: float, n: int) -> int:
    # round first: 0.1 * 30 is 3.0000000000000004, whose ceiling would be 4
    return math.ceil(round(fraction * n, 9)) if fraction > 0 else 0


def _create_split(ids: list[str], validation_fraction: float, inference_fraction: float, seed: int) -> dict[str, str]:
    for name, value in (("validation", validation_fraction), ("inference", inference_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"exclude_fraction_for_{name} = {value} must be in [0, 1)")
    n_val, n_inf = _count(validation_fraction, len(ids)), _count(inference_fraction, len(ids))
    if n_val + n_inf >= len(ids):
        raise DataError(
            f"{len(ids)} subject(s) cannot give {n_val} for validation and {n_inf} for inference and still "
            "leave one for training; lower exclude_fraction_for_validation / exclude_fraction_for_inference"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    phases = ["validation"] * n_val + ["inference"] * n_inf + ["training"] * (len(ids) - n_val - n_inf)
    assigned = {ids[i]: phase for i, phase in zip(order, phases)}
    return {s: assigned[s] for s in ids}


def load_or_create_split(
    split_file: PathLike,
    subject_ids: Sequence[str],
    *,
    validation_fraction: float = 0.0,
    inference_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, str]:
    """Read the dataset split file, or draw one and write it.

    If ``split_file`` exists it is used as is (fractions ignored); subjects it
    does not list are left out with a warning, and duplicate rows are
    ignored. Otherwise, if a fraction is positive, ``ceil(fraction * n)``
    subjects go to each excluded phase (shuffled with
    ``np.random.default_rng(seed)`` over the sorted ids) and the split is
    written atomically, without header, as NiftyNet did. With both fractions
    0 and no file, every subject is for training and nothing is written.

    Args:
        split_file: ``subject_id,phase`` csv.
        subject_ids: all subjects found in the input sources.
        validation_fraction: share of subjects excluded for validation.
        inference_fraction: share of subjects excluded for inference.
        seed: shuffling seed.

    Returns:
        Subject id -> phase, in sorted id order.

    Raises:
        DataError: no subjects; the file names an unknown subject, a bad
            phase or a malformed row; or the fractions leave no training subject.
    """
    split_file = Path(split_file)
    ids = sorted(set(subject_ids))
    if not ids:
        raise DataError(f"no subjects to split ({split_file})")
    if split_file.exists():
        split = _read_split(split_file, set(ids))
        unlisted = [s for s in ids if s not in split]
        if unlisted:
            logger.warning(
                "%s does not list %d subject(s), which are left out: %s", split_file, len(unlisted), _shorten(unlisted)
            )
        return {s: split[s] for s in ids if s in split}
    if validation_fraction <= 0 and inference_fraction <= 0:
        return {s: "training" for s in ids}
    split = _create_split(ids, validation_fraction, inference_fraction, seed)
    write_csv(split_file, split.items())
    logger.info("wrote dataset split %s", split_file)
    return split


def subjects_in_phase(split: Mapping[str, str], phase: str) -> list[str]:
    """Subject ids of one phase, in the split's order.

    Args:
        split: subject id -> phase, from :func:`load_or_create_split`.
        phase: ``"training"``, ``"validation"`` or ``"inference"`` (any case).

    Raises:
        ValueError: ``phase`` is not one of :data:`PHASES`.
    """
    phase = phase.lower()
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return [s for s, p in split.items() if p == phase]
