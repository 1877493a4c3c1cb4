"""Per-subject crop boxes (``crop_box_file``): the rib-cage boxes of Gibson et al.

The dense V-network of Gibson et al. (IEEE TMI 2018, doi:10.1109/TMI.2018.2806309) was
trained and run on CTs cropped to the rib cage and abdominal cavity; the public label set
(Zenodo record 1169361) ships the boxes as ``cropping.csv``, and so does ``niftykit
phantoms``. Columns (the Zenodo file's names)::

    id,publisher,original_id,extent_left,extent_right,extent_ant,extent_post,extent_inf,extent_sup

The six extents are **half-open voxel index bounds along the stored array axes 0, 1 and
2** of the subject's files: ``image[left:right, ant:post, inf:sup]`` is the crop, whatever
the file's orientation (the names are the Zenodo file's, not directions). Other columns
are ignored.

**Which row is whose.** A row belongs to the subject whose id equals its ``id``; failing
an exact match, ids are compared with leading and trailing ``_``, ``-``, ``.`` and spaces
removed, so ``case007`` in the CSV matches the subject ``case007_`` that NiftyNet's
naming gives ``case007_CT.nii.gz`` with ``filename_contains: CT`` (and ``100`` matches
``100_``). Two rows that match one subject the same way are an error. The preprocessing
(:mod:`niftykit.io.preprocess`) crops every source of a subject (image, label, sampling
map) to its box before anything else, and pads network outputs back to the file's grid.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from niftykit.errors import DataError
from niftykit.typing import PathLike, Shape3

__all__ = ["CROP_COLUMNS", "CropBox", "CropBoxes", "read_crop_boxes"]

#: The extent columns, in the order (axis 0 start, stop, axis 1 start, stop, axis 2 start, stop).
CROP_COLUMNS = ("extent_left", "extent_right", "extent_ant", "extent_post", "extent_inf",
                "extent_sup")
_STRIP = "_-. "


@dataclass(frozen=True)
class CropBox:
    """A half-open voxel box ``[start, stop)`` along the stored axes 0, 1, 2.

    Attributes:
        start: first voxel kept along each axis.
        stop: one past the last voxel kept along each axis.
    """

    start: Shape3
    stop: Shape3

    @property
    def shape(self) -> Shape3:
        """``(x, y, z)`` voxels inside the box."""
        x, y, z = (b - a for a, b in zip(self.start, self.stop))
        return x, y, z

    def check(self, shape: Sequence[int], where: str) -> None:
        """Raise :class:`DataError` unless the box lies inside an image of ``shape``.

        Args:
            shape: ``(x, y, z)`` of the image (values after z are ignored).
            where: what the message names (the image file and the box's row).
        """
        size = tuple(int(s) for s in shape[:3])
        if any(a < 0 or b > n or a >= b for a, b, n in zip(self.start, self.stop, size)):
            raise DataError(f"{where}: crop box {self} lies outside the image "
                            f"(shape {'x'.join(map(str, size))}); extents are half-open voxel "
                            "bounds along the stored axes 0, 1, 2, 0 <= start < stop <= size")

    def __str__(self) -> str:
        return "[" + ", ".join(f"{a}:{b}" for a, b in zip(self.start, self.stop)) + "]"


class CropBoxes:
    """The boxes of a ``crop_box_file``, looked up by subject id.

    Args:
        path: the CSV, named in messages.
        boxes: ``id`` column → box.
    """

    def __init__(self, path: Path, boxes: Dict[str, CropBox]) -> None:
        self.path = Path(path)
        self.boxes = dict(boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    def find(self, subject_id: str, where: str = "") -> CropBox:
        """The box of a subject (module docstring: exact id, else ids without separators).

        Args:
            subject_id: e.g. ``"case007_"``.
            where: the file the box is for, named in the message.

        Raises:
            DataError: no row, or several rows, match the subject.
        """
        if subject_id in self.boxes:
            return self.boxes[subject_id]
        key = subject_id.strip(_STRIP)
        found = [name for name in self.boxes if name.strip(_STRIP) == key]
        what = f"{where}: " if where else ""
        if len(found) > 1:
            raise DataError(f"{what}rows {', '.join(found)} of {self.path} all match subject "
                            f"'{subject_id}'; keep one")
        if not found:
            raise DataError(f"{what}no crop box for subject '{subject_id}' in {self.path} "
                            f"(its 'id' column must equal the subject id; {len(self)} rows, "
                            f"e.g. {', '.join(sorted(self.boxes)[:3]) or 'none'})")
        return self.boxes[found[0]]


def _number(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {column} = {text!r} is not a number") from None
    if not value.is_integer():
        raise DataError(f"{where}: {column} = {text!r} is not a whole voxel index")
    return int(value)


def _box(row: Dict[str, str], where: str) -> CropBox:
    values = [_number((row.get(column) or "").strip(), column, where) for column in CROP_COLUMNS]
    start: Tuple[int, int, int] = (values[0], values[2], values[4])
    stop: Tuple[int, int, int] = (values[1], values[3], values[5])
    return CropBox(start, stop)


def read_crop_boxes(path: PathLike) -> CropBoxes:
    """Read a ``cropping.csv`` (module docstring for the format).

    Raises:
        DataError: the file is missing or unreadable, lacks a column, or has a bad value or
            a repeated id.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            rows: List[Dict[str, str]] = list(reader)
            header = [name.strip() for name in reader.fieldnames or []]
    except OSError as error:
        raise DataError(f"cannot read the crop box file {path}: {error.strerror or error}") \
            from None
    missing = [c for c in ("id", *CROP_COLUMNS) if c not in header]
    if not rows or missing:
        raise DataError(f"{path}: a crop box file needs a header and one row per subject with "
                        f"columns id, {', '.join(CROP_COLUMNS)}"
                        + (f"; missing {', '.join(missing)}" if rows else "; it has no rows"))
    boxes: Dict[str, CropBox] = {}
    for line, row in enumerate(rows, start=2):
        row = {str(k).strip(): v for k, v in row.items() if k is not None}
        name = (row.get("id") or "").strip()
        where = f"{path} line {line}"
        if not name:
            raise DataError(f"{where}: empty id")
        if name in boxes:
            raise DataError(f"{where}: id '{name}' given twice")
        boxes[name] = _box(row, where)
    return CropBoxes(path, boxes)
