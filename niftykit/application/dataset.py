"""From config input sections to subjects: file discovery, joining, partitions.

The one place where an application's input sections meet the I/O layer's
discovery functions, so every application finds its data the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from niftykit.errors import DataError
from niftykit.io import (PHASES, Subject, find_files, load_or_create_split, match_subjects,
                         read_file_list, subjects_in_phase)
from niftykit.io.discovery import DataTable, read_data_csv

__all__ = ["discover_subjects", "select_phase"]


def discover_subjects(inputs: Mapping[str, object], sources: Sequence[str],
                      strict: bool = False) -> List[Subject]:
    """Find the files of each named input section and join them on subject id.

    Args:
        inputs: the config's input sections by name.
        sources: the section names this phase needs (e.g. image and label sources).
        strict: a subject missing a source is an error (``system.strict_subjects``)
            instead of a warning.

    Returns:
        Subjects having every source, sorted by id. A source whose section sets
        ``csv_data_file`` holds one row of values per subject instead of files:
        it is read (and checked) here but does not take part in the join; the
        subject's path for it is the CSV file, and a missing row is an error
        when the application needs that subject's value
        (:meth:`~niftykit.io.discovery.DataTable.row`), not before: subjects
        kept for inference need no label.

    Raises:
        DataError: as :func:`~niftykit.io.match_subjects` and
            :func:`~niftykit.io.discovery.read_data_csv`.
    """
    found: Dict[str, Mapping[str, object]] = {}
    tables: Dict[str, DataTable] = {}
    for name in dict.fromkeys(sources):
        section = inputs[name]
        if getattr(section, "csv_data_file", None):
            tables[name] = read_data_csv(section.csv_data_file, source=name)
        elif getattr(section, "csv_file", None):
            found[name] = read_file_list(section.csv_file, source=name)
        else:
            found[name] = find_files(
                section.path_to_search, section.filename_contains,
                section.filename_not_contains, section.filename_removefromid, source=name)
    if not found:
        raise DataError(f"input sources {', '.join(sources)} are all csv_data_file tables; "
                        "give at least one image source")
    subjects = match_subjects(found, strict=strict)
    for name, table in tables.items():
        for subject in subjects:
            subject.paths[name] = table.path
    return subjects


def select_phase(subjects: Sequence[Subject], system: object, training: object,
                 phase: str, *, create: bool,
                 strata: Optional[Callable[[Sequence[Subject]], Mapping[str, Any]]] = None
                 ) -> List[Subject]:
    """The subjects of one partition (``training``, ``validation``, ``inference`` or ``all``).

    The split comes from ``system.dataset_split_file``; when that file does not
    exist and ``create`` is true (training) it is made from the
    ``exclude_fraction_for_*`` settings with ``system.seed``, per class when ``strata``
    gives the subjects' classes (it is called only when a split is drawn; None from it: a
    plain shuffle). Without a split file every subject is a training subject, and
    ``inference`` means all.
    """
    if phase == "all":
        return list(subjects)
    if phase not in PHASES:
        raise DataError(f"unknown phase '{phase}' (training, validation, inference or all)")
    split_file = system.dataset_split_file
    if not split_file.exists() and not create:
        return list(subjects) if phase in ("training", "inference") else []
    split = load_or_create_split(
        split_file, [s.id for s in subjects],
        validation_fraction=training.exclude_fraction_for_validation,
        inference_fraction=training.exclude_fraction_for_inference,
        seed=system.seed, strata=None if strata is None else (lambda: strata(subjects)))
    chosen = set(subjects_in_phase(split, phase))
    return [s for s in subjects if s.id in chosen]
