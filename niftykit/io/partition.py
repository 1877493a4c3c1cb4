"""The dataset split: which subject is for training, validation or inference.

Same file as NiftyNet's ``dataset_split_file``: ``subject_id,phase`` rows,
no header, phase in {training, validation, inference} (case-insensitive).
:func:`write_folds` writes one such file per cross-validation fold.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

from niftykit.errors import DataError
from niftykit.io.writer import write_csv
from niftykit.typing import PathLike

__all__ = ["PHASES", "load_or_create_split", "subjects_in_phase", "write_folds"]

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


def _order(ids: list[str], rng: np.random.Generator, strata: Mapping[str, Hashable] | None) -> np.ndarray:
    """A random order of ``ids``' indices; with ``strata``, one in which every stratum is spread
    evenly, so that any run of it holds each stratum in proportion (within one subject).

    Each stratum's members, shuffled, take the positions ``(j + u) / n`` (``j`` their rank,
    ``n`` the stratum's size, ``u`` a random offset of the stratum), and the order sorts
    the positions (ties at random): any ``k`` consecutive subjects are a proportional sample
    (systematic sampling). Not every ``K``-th subject: that can alias with a stratum.
    """
    if strata is None:
        return rng.permutation(len(ids))
    missing = [s for s in ids if s not in strata]
    if missing:
        raise DataError(f"no class for subject(s) {_shorten(missing)} to stratify the split by")
    position = np.empty(len(ids))
    groups: dict[Hashable, list[int]] = {}
    for index, subject in enumerate(ids):
        groups.setdefault(strata[subject], []).append(index)
    for key in sorted(groups, key=str):
        members = np.array(groups[key])[rng.permutation(len(groups[key]))]
        position[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.lexsort((rng.random(len(ids)), position))


def _create_split(ids: list[str], validation_fraction: float, inference_fraction: float, seed: int,
                  strata: Mapping[str, Hashable] | None = None) -> dict[str, str]:
    for name, value in (("validation", validation_fraction), ("inference", inference_fraction)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"exclude_fraction_for_{name} = {value} must be in [0, 1)")
    n_val, n_inf = _count(validation_fraction, len(ids)), _count(inference_fraction, len(ids))
    if n_val + n_inf >= len(ids):
        raise DataError(
            f"{len(ids)} subject(s) cannot give {n_val} for validation and {n_inf} for inference and still "
            "leave one for training; lower exclude_fraction_for_validation / exclude_fraction_for_inference"
        )
    order = _order(ids, np.random.default_rng(seed), strata)
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
    strata: Mapping[str, Hashable] | Callable[[], Mapping[str, Hashable] | None] | None = None,
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
        strata: subject id -> class; given, each class is split in proportion (the counts
            per phase stay ``ceil(fraction * n)``; each class's share is within one
            subject of proportional). None: a plain shuffle, as NiftyNet's. A function
            returning either is called only when a split is drawn (reading every
            subject's class can mean reading every label file).

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
    if callable(strata):
        strata = strata()
    split = _create_split(ids, validation_fraction, inference_fraction, seed, strata)
    try:
        write_csv(split_file, split.items())
    except DataError:
        # another process (a second worker of the same run) wrote it since the check above:
        # the same seed gives the same split; anything else is an error
        if not split_file.exists() or _read_split(split_file, set(ids)) != split:
            raise
        return split
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


def _fold_split(
    ids: list[str], held_out: set[str], validation_fraction: float, rng: np.random.Generator,
    strata: Mapping[str, Hashable] | None = None,
) -> dict[str, str]:
    train = [s for s in ids if s not in held_out]
    n_val = _count(validation_fraction, len(train))
    if n_val >= len(train):
        raise DataError(
            f"validation_fraction = {validation_fraction} takes all {len(train)} training subject(s) of a fold; "
            "lower it or use fewer folds"
        )
    validation = {train[i] for i in _order(train, rng, strata)[:n_val]}
    return {s: "inference" if s in held_out else "validation" if s in validation else "training" for s in ids}


def write_folds(
    split_dir: PathLike,
    subject_ids: Sequence[str],
    folds: int,
    *,
    seed: int = 0,
    validation_fraction: float = 0.0,
    overwrite: bool = False,
    strata: Mapping[str, Hashable] | None = None,
) -> list[Path]:
    """Write one dataset split file per fold for K-fold cross-validation.

    The sorted, de-duplicated ids are shuffled with
    ``np.random.default_rng(seed)`` and dealt into ``folds`` groups whose
    sizes differ by at most one; with ``strata`` each class is dealt evenly over the folds
    (and over each fold's validation share). Fold ``k``'s file
    ``<split_dir>/fold_<k>.csv`` (``k`` from 0) lists group ``k`` as
    ``inference`` and the other subjects as ``training``, except
    ``ceil(validation_fraction * n_train)`` of them (drawn from the same
    generator) as ``validation``. Each file is what
    :func:`load_or_create_split` reads (``subject_id,phase``, no header),
    written atomically.

    Args:
        split_dir: folder for the files; created if missing.
        subject_ids: all subjects.
        folds: number of folds K, in ``[2, number of subjects]``.
        seed: shuffling seed.
        validation_fraction: share of each fold's training subjects set
            aside for validation, in ``[0, 1)``.
        overwrite: replace existing fold files.
        strata: subject id -> class, to stratify the folds by (see
            :func:`load_or_create_split`).

    Returns:
        The K written paths, fold 0 first.

    Raises:
        DataError: no subjects, ``folds`` or ``validation_fraction`` out of
            range, or a fold file exists and ``overwrite`` is False.
    """
    split_dir = Path(split_dir)
    ids = sorted(set(subject_ids))
    if len(ids) < 2:
        raise DataError(f"cross-validation needs at least 2 subjects, got {len(ids)} (fold files in {split_dir})")
    if not 2 <= folds <= len(ids):
        raise DataError(
            f"cannot make {folds} fold(s) of {len(ids)} subjects (fold files in {split_dir}): "
            f"folds must be between 2 and {len(ids)}"
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction = {validation_fraction} must be in [0, 1)")
    paths = [split_dir / f"fold_{k}.csv" for k in range(folds)]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} exists; delete it, choose another folder, or pass overwrite / --overwrite")
    rng = np.random.default_rng(seed)
    # contiguous runs of the stratified order are proportional samples (every K-th one
    # would alias with a stratum's period)
    groups = np.array_split(_order(ids, rng, strata), folds)
    splits = [_fold_split(ids, {ids[i] for i in group}, validation_fraction, rng, strata)
              for group in groups]
    for path, split in zip(paths, splits, strict=True):
        write_csv(path, split.items(), overwrite=overwrite)
    logger.info("wrote %d fold split files in %s", folds, split_dir)
    return paths
