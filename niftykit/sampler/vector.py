"""Per-subject vector outputs (classification scores, regression values) to CSV.

NiftyNet had no classifier aggregator: classification wrote CSV rows
through ``ResizeSamplesAggregator`` (``engine/windows_aggregator_resize.py``),
one row per window. Here each subject gets one row, the mean over its
windows, as MONAI's ``CSVSaver`` writes one row per image; the file is
written atomically by :func:`niftykit.io.write_csv` when closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from niftykit.io.writer import write_csv
from niftykit.typing import PathLike

__all__ = ["VectorAggregator"]


class VectorAggregator:
    """Collect one vector per subject and write them as ``subject_id,<names...>`` rows.

    Args:
        out_csv: the CSV file to write on :meth:`close`.
        names: column names of the ``k`` values, e.g. class names.
        overwrite: replace an existing ``out_csv`` on :meth:`close`.

    Raises:
        ValueError: no names, a repeated name, or a name ``subject_id``.
    """

    def __init__(self, out_csv: PathLike, names: Sequence[str], *, overwrite: bool) -> None:
        self.names = tuple(str(n) for n in names)
        if not self.names or len(set(self.names)) != len(self.names) or "subject_id" in self.names:
            raise ValueError(f"names must be distinct column names other than 'subject_id', got {self.names}")
        self.out_csv = Path(out_csv)
        self.overwrite = overwrite
        self._rows: dict[str, np.ndarray] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, subject_id: str, values: np.ndarray) -> None:
        """Add a subject's values.

        Args:
            subject_id: the subject's id, once per subject.
            values: ``(k,)`` values, or ``(n_windows, k)`` values averaged over
                the windows.

        Raises:
            ValueError: the subject was already added, or values are not
                ``(k,)`` / ``(n, k)`` with ``k = len(names)`` and ``n >= 1``.
            RuntimeError: the aggregator is closed.
        """
        if self._closed:
            raise RuntimeError(f"{self.out_csv} is already written; make a new VectorAggregator")
        subject_id = str(subject_id)
        if not subject_id:
            raise ValueError("subject_id must not be empty")
        if subject_id in self._rows:
            raise ValueError(f"subject '{subject_id}' was already added to {self.out_csv}")
        array = np.asarray(values)
        k = len(self.names)
        if array.ndim == 1:
            array = array[np.newaxis]
        if array.ndim != 2 or array.shape[1] != k or array.shape[0] == 0:
            raise ValueError(f"values for subject '{subject_id}' must be ({k},) or (n_windows, {k}) "
                             f"for columns {self.names}, got shape {np.shape(values)}")
        self._rows[subject_id] = array.mean(axis=0) if len(array) > 1 else array[0].copy()

    def close(self) -> Path:
        """Write the CSV atomically, one row per subject in the order added.

        Returns:
            The written path.

        Raises:
            DataError: ``out_csv`` exists and ``overwrite`` is False, or it
                cannot be written.
            RuntimeError: already closed.
        """
        if self._closed:
            raise RuntimeError(f"{self.out_csv} is already written")
        rows = [[subject_id, *values] for subject_id, values in self._rows.items()]
        path = write_csv(self.out_csv, rows, header=["subject_id", *self.names], overwrite=self.overwrite)
        self._closed = True
        return path
