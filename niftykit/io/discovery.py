"""Finding image files, naming subjects and matching them across input sources.

Follows NiftyNet's ``KeywordsMatching`` and ``ImageSetsPartitioner`` rules
(``niftynet/utilities/filename_matching.py``): a subject id is the file name
without its extension, with the regular expression ``filename_removefromid``
removed if one is given, else with each ``filename_contains`` keyword removed.
Unlike NiftyNet, non-word characters are kept (``sub-01_T1`` gives ``sub-01_``)
and ids are never fuzzy-matched across sources: they must agree exactly.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from niftykit.errors import DataError
from niftykit.io.readers import SUPPORTED_SUFFIXES
from niftykit.typing import PathLike

__all__ = ["Subject", "find_files", "read_file_list", "match_subjects", "DataTable",
           "read_data_csv"]

logger = logging.getLogger("niftykit")

#: File suffixes taken as images (Analyze ``.img``/``.hdr`` pairs count once, via ``.hdr``).
#: every suffix the readers take, except ``.img`` (an Analyze pair counts once, by its ``.hdr``)
IMAGE_SUFFIXES = tuple(s for s in SUPPORTED_SUFFIXES if s != ".img")
_MAX_LISTED = 10


@dataclass
class Subject:
    """One subject: its id and one file per input source.

    Attributes:
        id: subject id, e.g. ``"100_"`` for ``100_CT.nii.gz``.
        paths: input-source name -> image file.
    """

    id: str
    paths: dict[str, Path] = field(default_factory=dict)


def _split_suffix(path: Path) -> tuple[str, str] | None:
    """``("sub1_T1", ".nii.gz")`` for ``sub1_T1.nii.gz``, ``("case1", "")`` for a DICOM
    series folder; None if not an image."""
    name = path.name
    if path.is_dir():
        return (name, "") if any(path.glob("*.dcm")) else None
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return None


def _as_list(value: PathLike | Sequence[PathLike]) -> list:
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return list(value)


def _subject_id(stem: str, contains: Sequence[str], remove: re.Pattern | None) -> str:
    if remove is not None:  # NiftyNet: the regex replaces the keyword removal
        return remove.sub("", stem)
    for keyword in contains:
        stem = stem.replace(keyword, "")
    return stem


def _compile(pattern: str, source: str) -> re.Pattern | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataError(
            f"input source '{source}': filename_removefromid {pattern!r} is not a valid regular expression ({exc})"
        ) from exc


def _list_folder(folder: Path, source: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"input source '{source}': folder {folder} does not exist (path_to_search)")
    return sorted(folder.iterdir())


def find_files(
    path_to_search: Sequence[PathLike],
    filename_contains: Sequence[str] = (),
    filename_not_contains: Sequence[str] = (),
    filename_removefromid: str = "",
    *,
    source: str = "",
) -> dict[str, Path]:
    """Find one input source's image files and name their subjects.

    Folders are searched non-recursively. A file is taken when its name has an
    image suffix (a sub-folder holding ``*.dcm`` files counts as one DICOM series), contains all ``filename_contains`` and none of
    ``filename_not_contains``. Its subject id is the name without extension
    (``.nii.gz`` counts as one) minus the matches of the regex
    ``filename_removefromid`` when given, otherwise minus each contains-keyword:
    ``100_CT.nii`` with contains ``["CT"]`` gives ``"100_"``; ``sub1_T1.nii.gz``
    with contains ``["T1"]`` and removefromid ``"_T1"`` gives ``"sub1"``.

    Args:
        path_to_search: folders to search (a single folder is accepted too).
        filename_contains: keywords the file name must all contain.
        filename_not_contains: keywords the file name must not contain.
        filename_removefromid: regular expression removed from the ids.
        source: input-source name, for messages.

    Returns:
        Subject id -> file, sorted by id.

    Raises:
        DataError: a folder is missing, no file matched, an id is empty, or
            two files give the same id.
    """
    folders = [Path(p) for p in _as_list(path_to_search)]
    contains, not_contains = _as_list(filename_contains), _as_list(filename_not_contains)
    remove = _compile(filename_removefromid, source)
    found: dict[str, Path] = {}
    for folder in folders:
        for path in _list_folder(folder, source):
            split = _split_suffix(path)
            if split is None or not all(k in path.name for k in contains):
                continue
            if any(k in path.name for k in not_contains):
                continue
            subject = _subject_id(split[0], contains, remove)
            if not subject:
                raise DataError(
                    f"input source '{source}': {path} gives an empty subject id; "
                    "loosen filename_removefromid or filename_contains"
                )
            if subject in found:
                raise DataError(
                    f"input source '{source}': {found[subject]} and {path} both give subject id {subject!r}; "
                    "refine filename_contains / filename_not_contains"
                )
            found[subject] = path
    if not found:
        raise DataError(
            f"input source '{source}': no image file in {', '.join(map(str, folders))} has a name containing "
            f"{contains} and not {not_contains}; check path_to_search and filename_contains"
        )
    return dict(sorted(found.items()))


def _parse_row(row: list[str], where: str) -> tuple[str, str]:
    cells = [c.strip() for c in row]
    if len(cells) != 2 or not cells[0] or not cells[1]:
        raise DataError(f"{where}: expected two columns 'subject_id,path', got {row}")
    return cells[0], cells[1]


def read_file_list(csv_file: PathLike, *, source: str = "") -> dict[str, Path]:
    """Read a NiftyNet per-source file list (``csv_file``).

    Rows are ``subject_id,path`` without a header (a ``subject_id,path``
    header row is tolerated); relative paths resolve against the csv's folder.

    Args:
        csv_file: the list.
        source: input-source name, for messages.

    Returns:
        Subject id -> file, sorted by id.

    Raises:
        DataError: the csv is missing or empty, a row is malformed, an id
            repeats, or a listed file does not exist.
    """
    csv_file = Path(csv_file)
    label = f"input source '{source}': " if source else ""
    if not csv_file.is_file():
        raise DataError(f"{label}file list {csv_file} does not exist (csv_file)")
    found: dict[str, Path] = {}
    with csv_file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{label}{csv_file} line {line}"
            subject, name = _parse_row(row, where)
            if line == 1 and (subject.lower(), name.lower()) == ("subject_id", "path"):
                continue
            path = Path(name) if Path(name).is_absolute() else csv_file.parent / name
            if not path.is_file():
                raise DataError(f"{where}: subject {subject!r}: file {path} does not exist")
            if subject in found:
                raise DataError(f"{where}: subject {subject!r} is listed twice ({found[subject]} and {path})")
            found[subject] = path
    if not found:
        raise DataError(f"{label}file list {csv_file} has no rows; expected 'subject_id,path' lines")
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class DataTable:
    """Per-subject values from a NiftyNet ``csv_data_file`` (labels, regression targets).

    Attributes:
        path: the CSV file.
        columns: a name per value column (from a header row, else ``value`` for one
            column and ``value_0``, ``value_1``... for several).
        values: subject id -> ``(k,)`` float64 values, sorted by id.
    """

    path: Path
    columns: tuple[str, ...]
    values: dict[str, tuple[float, ...]]

    def row(self, subject: str) -> tuple[float, ...]:
        """The values of one subject.

        Raises:
            DataError: the file has no row for ``subject`` (naming the file and the id).
        """
        if subject not in self.values:
            raise DataError(f"{self.path} has no row for subject {subject!r}; add a line "
                            f"'{subject},<value>' (csv_data_file)")
        return self.values[subject]


def _numbers(cells: list[str]) -> tuple[float, ...] | None:
    try:
        return tuple(float(c) for c in cells)
    except ValueError:
        return None


def read_data_csv(csv_file: PathLike, *, source: str = "") -> DataTable:
    """Read a ``csv_data_file``: rows ``subject_id,value[,value...]``.

    As NiftyNet's CSV reader (``niftynet/contrib/csv_reader``): no header, the
    subject id then its values. A first row whose values are not numbers is
    taken as a header naming the columns. Every row has the same number of
    values; values must be finite numbers.

    Args:
        csv_file: the table.
        source: input-source name, for messages.

    Returns:
        The table.

    Raises:
        DataError: the file is missing or empty, a row is malformed or has a
            value that is not a number, the rows differ in length, or an id repeats.
    """
    csv_file = Path(csv_file)
    label = f"input source '{source}': " if source else ""
    if not csv_file.is_file():
        raise DataError(f"{label}{csv_file} does not exist (csv_data_file)")
    columns: tuple[str, ...] | None = None
    values: dict[str, tuple[float, ...]] = {}
    with csv_file.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            where = f"{label}{csv_file} line {line}"
            if len(cells) < 2 or not cells[0] or not all(cells[1:]):
                raise DataError(f"{where}: expected 'subject_id,value[,value...]', got {row}")
            numbers = _numbers(cells[1:])
            if numbers is None and columns is None and not values:
                columns = tuple(cells[1:])
                continue
            if numbers is None or not all(math.isfinite(v) for v in numbers):
                raise DataError(f"{where}: subject {cells[0]!r}: values must be numbers, got {cells[1:]}")
            width = len(columns) if columns else len(next(iter(values.values()), numbers))
            if len(numbers) != width:
                raise DataError(f"{where}: subject {cells[0]!r} has {len(numbers)} values, "
                                f"the rows before have {width}")
            if cells[0] in values:
                raise DataError(f"{where}: subject {cells[0]!r} is listed twice")
            values[cells[0]] = numbers
    if not values:
        raise DataError(f"{label}{csv_file} has no rows; expected 'subject_id,value' lines")
    width = len(next(iter(values.values())))
    if columns is None:
        columns = ("value",) if width == 1 else tuple(f"value_{i}" for i in range(width))
    return DataTable(path=csv_file, columns=columns, values=dict(sorted(values.items())))


def _list_ids(ids: Sequence[str], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _missing_report(sources: Mapping[str, Mapping[str, Path]], missing: list[str]) -> str:
    lacking = [f"{s} (lacks {', '.join(n for n in sources if s not in sources[n])})" for s in missing]
    return f"{len(missing)} subject(s) are not in every input source: {_list_ids(lacking)}"


def match_subjects(sources: Mapping[str, Mapping[str, Path]], *, strict: bool = False) -> list[Subject]:
    """Join input sources on subject id (inner join).

    Args:
        sources: input-source name -> (subject id -> file), e.g. from
            :func:`find_files` or :func:`read_file_list`.
        strict: raise instead of warning when a subject lacks a source.

    Returns:
        Subjects present in every source, sorted by id; each subject's
        ``paths`` follows the order of ``sources``.

    Raises:
        DataError: no sources, no subject in common, or (with ``strict``) a
            subject missing from some source.
    """
    if not sources:
        raise DataError("no input sources to match subjects across")
    id_sets = [set(ids) for ids in sources.values()]
    common = sorted(set.intersection(*id_sets))
    missing = sorted(set.union(*id_sets) - set(common))
    if not common:
        examples = "; ".join(f"'{n}' has {_list_ids(sorted(ids), 3)}" for n, ids in sources.items())
        raise DataError(
            f"no subject id is common to input sources {', '.join(sources)} ({examples}); "
            "check filename_contains / filename_removefromid so that ids agree"
        )
    if missing:
        message = _missing_report(sources, missing)
        if strict:
            raise DataError(message)
        logger.warning("%s; they are left out", message)
    return [Subject(id=s, paths={n: Path(ids[s]) for n, ids in sources.items()}) for s in common]
