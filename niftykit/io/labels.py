"""Discrete label normalisation: training label codes <-> class indices 0..K-1.

NiftyNet's ``niftynet/layer/discrete_label_normalisation.py``: the sorted
unique label values found in the training label maps become classes
0..K-1 (the abdominal CT labels 0, 1, 3, 4, 5, 6, 7, 11, 14 become 0..8), and
the network's output is mapped back to the original codes. The mapping is
kept in NiftyNet's ``histogram_ref_file`` as two lines,
``label_<source>-from c0 c1 ...`` and ``label_<source>-to 0 1 ...``, next to
the intensity landmarks of :mod:`niftykit.io.histogram`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from niftykit.errors import DataError
from niftykit.io.histogram import read_reference_file, update_reference_file
from niftykit.typing import PathLike

__all__ = ["LabelMapping"]

_SOURCE = re.compile(r"^[0-9A-Za-z_\-]+$")
_LOOKUP_MAX = 1 << 16  # largest code span served by a lookup table
_INVERT_DTYPES = (np.uint8, np.int16, np.int32, np.int64)


def _integer_codes(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as int64, or DataError if any is not a whole number."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    bad = values[~np.isfinite(values) | (values != np.round(values))] if values.size else values
    if bad.size:
        raise DataError(f"{what} holds non-integer label value {bad.flat[0]:g}; label maps must hold whole numbers")
    return values.astype(np.int64)


def _keys(source: str) -> tuple:
    if not _SOURCE.match(source):
        raise ValueError(f"label source name {source!r} may use only letters, digits, '_' and '-'")
    return f"label_{source}-from", f"label_{source}-to"


class LabelMapping:
    """An invertible map from label codes to class indices 0..K-1.

    Args:
        codes: the label codes, sorted and unique, e.g. ``[0, 1, 3, 4, 5, 6, 7, 11, 14]``.

    Attributes:
        codes: ``(K,)`` int64; class ``i`` is the label ``codes[i]``.

    Raises:
        ValueError: codes empty, not whole numbers, or not strictly increasing.
    """

    def __init__(self, codes: Sequence[int]) -> None:
        try:
            codes = _integer_codes(np.asarray(codes).ravel(), "codes")
        except DataError as exc:
            raise ValueError(str(exc)) from None
        if codes.size == 0 or np.any(np.diff(codes) <= 0):
            raise ValueError(f"label codes must be non-empty, sorted and unique, got {codes.tolist()}")
        self.codes = codes
        self._lookup = self._table() if codes[-1] - codes[0] < _LOOKUP_MAX else None

    def __repr__(self) -> str:
        return f"LabelMapping({self.codes.tolist()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMapping) and np.array_equal(self.codes, other.codes)

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return int(self.codes.size)

    def _table(self) -> np.ndarray:
        """Lookup table: ``table[v - codes[0]]`` is v's index, -1 if v is no code."""
        table = np.full(int(self.codes[-1] - self.codes[0]) + 1, -1, dtype=np.int32)
        table[self.codes - self.codes[0]] = np.arange(self.codes.size, dtype=np.int32)
        return table

    @classmethod
    def learn(cls, label_arrays: Iterable[np.ndarray]) -> LabelMapping:
        """The mapping of every value found in the training label maps.

        Args:
            label_arrays: label maps of any shape (e.g. ``(x, y, z, 1)``), read one at a time.

        Raises:
            DataError: no arrays, or a value that is not a whole number.
        """
        found: set = set()
        for index, array in enumerate(label_arrays):
            found.update(_integer_codes(np.unique(array), f"training label map {index}").tolist())
        if not found:
            raise DataError("no training label maps to learn the label mapping from")
        return cls(sorted(found))

    def apply(self, array: np.ndarray, *, where: str = "") -> np.ndarray:
        """Codes to class indices.

        Args:
            array: label map of any shape; integers (or whole-number floats).
            where: the file or subject, for messages.

        Returns:
            int32 C-contiguous array of indices 0..K-1, same shape.

        Raises:
            DataError: a value that is not one of :attr:`codes`.
        """
        values = np.asarray(array)
        if values.dtype.kind not in "iu":
            values = _integer_codes(values, f"label map {where}".rstrip())
        in_range = values.size == 0 or (values.min() >= self.codes[0] and values.max() <= self.codes[-1])
        if self._lookup is not None and in_range:
            indices = self._lookup[values - self.codes[0] if self.codes[0] else values]
        else:
            found = np.clip(np.searchsorted(self.codes, values), 0, self.codes.size - 1)
            indices = np.where(self.codes[found] == values, found, -1)
        if np.any(indices < 0):
            value = values[indices < 0].flat[0]
            raise DataError(
                f"label value {value} in {where or 'the label map'} is not one of the learnt codes "
                f"{' '.join(map(str, self.codes.tolist()))}; fix the label map, or delete the label_ lines "
                "of the histogram reference file to learn the mapping again"
            )
        return np.ascontiguousarray(indices, dtype=np.int32)

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Class indices to codes.

        Args:
            array: integer indices 0..K-1, any shape (e.g. an argmax ``(x, y, z)``).

        Returns:
            codes, same shape, as the smallest of uint8, int16, int32 (int64)
            that holds them.

        Raises:
            DataError: an index outside 0..K-1.
        """
        indices = np.asarray(array)
        if indices.dtype.kind not in "iu":
            indices = _integer_codes(indices, "class index map")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_classes):
            bad = indices[(indices < 0) | (indices >= self.num_classes)].flat[0]
            raise DataError(f"class index {bad} is outside 0..{self.num_classes - 1} of the label mapping")
        low, high = self.codes[0], self.codes[-1]
        dtype = next(t for t in _INVERT_DTYPES if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
        return np.ascontiguousarray(self.codes.astype(dtype)[indices])

    def save(self, path: PathLike, source: str, *, overwrite: bool = True) -> None:
        """Write the ``label_<source>-from``/``-to`` lines into a reference file.

        Other lines (intensity landmarks, other sources) are kept; written atomically.

        Raises:
            DataError: the file exists and ``overwrite`` is False, or it cannot be written.
        """
        key_from, key_to = _keys(source)
        entries = {
            key_from: [str(code) for code in self.codes.tolist()],
            key_to: [str(index) for index in range(self.num_classes)],
        }
        update_reference_file(path, entries, overwrite=overwrite)

    @classmethod
    def load(cls, path: PathLike, source: str) -> LabelMapping:
        """Read the mapping of ``source`` from a NiftyNet reference file.

        Raises:
            DataError: the file is missing or unreadable, a line is missing, or
                the lines are not sorted whole-number codes and 0..K-1.
        """
        path = Path(path)
        key_from, key_to = _keys(source)
        entries = read_reference_file(path)
        where = f"histogram reference file {path}"
        fix = f"delete the {key_from} and {key_to} lines to learn the mapping again"
        missing = [key for key in (key_from, key_to) if key not in entries]
        if missing:
            raise DataError(f"{where} has no {' or '.join(missing)} line; {fix}")
        try:
            codes = np.array([float(v) for v in entries[key_from]])
            targets = np.array([float(v) for v in entries[key_to]])
            mapping = cls(codes)
        except ValueError:
            raise DataError(f"{where}: {key_from} must list sorted, unique whole numbers; {fix}") from None
        if not np.array_equal(targets, np.arange(mapping.num_classes)):
            raise DataError(f"{where}: {key_to} must be 0 1 ... {mapping.num_classes - 1}, one per code; {fix}")
        return mapping
