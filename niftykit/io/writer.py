"""Atomic writers: NIfTI images and small CSV tables.

Every file is written to a hidden temporary file in the destination folder
and moved into place with :func:`os.replace`, so a crash or an error never
leaves a partial file where a result is expected.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import nibabel as nib
import numpy as np

from niftykit.errors import DataError, ImageError, NiftykitError
from niftykit.typing import PathLike

__all__ = ["write_image", "write_csv", "write_text"]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


@contextmanager
def _atomic_target(path: Path, overwrite: bool, error: type[NiftykitError]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success."""
    if path.exists() and not overwrite:
        raise error(f"{path} exists; delete it, choose another path, or pass overwrite / --overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _nifti_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise ImageError(f"cannot write {path}: give the file a .nii or .nii.gz suffix")


def _storable(array: np.ndarray) -> np.ndarray:
    """Cast to a dtype NIfTI stores: bool -> uint8, float16 -> float32, int64 -> int32 when it fits."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(np.int32)
    return array


def write_image(array: np.ndarray, affine: np.ndarray, path: PathLike, *, overwrite: bool = False,
                xform_codes: tuple[int, int] | None = None) -> Path:
    """Write a volume as NIfTI-1, atomically.

    The compression follows the suffix (``.nii`` or ``.nii.gz``). Both the
    qform and the sform are set to ``affine``, with the input's codes when
    given (``xform_codes``; a code of 0 becomes 1, scanner), units mm.
    Integer arrays stay integer (64-bit integers are stored as int32 when the
    values fit, for other tools' sake); booleans are stored as uint8.

    Args:
        array: ``(x, y, z)`` or ``(x, y, z, channels)``; a trailing channel
            axis of size 1 is dropped.
        affine: ``(4, 4)`` voxel-to-RAS+ matrix in mm.
        path: destination; missing parent folders are created.
        overwrite: replace an existing file.
        xform_codes: ``(qform_code, sform_code)`` of the input whose grid this is.

    Returns:
        The written path.

    Raises:
        ImageError: the file exists and ``overwrite`` is False, the suffix is
            not NIfTI, or the file cannot be written.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4):
        raise ValueError(f"write_image: array must be (x, y, z) or (x, y, z, channels), got {array.shape} for {path}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"write_image: affine must be (4, 4), got {affine.shape} for {path}")
    _nifti_suffix(path)
    img = nib.Nifti1Image(_storable(array), affine)
    qform_code, sform_code = xform_codes or (1, 1)
    img.set_qform(affine, code=int(qform_code) or 1)
    img.set_sform(affine, code=int(sform_code) or 1)
    img.header.set_xyzt_units("mm")
    with _atomic_target(path, overwrite, ImageError) as tmp:
        nib.save(img, str(tmp))
    return path


def write_csv(
    path: PathLike,
    rows: Iterable[Sequence[object]],
    *,
    header: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a small table as CSV, atomically.

    Args:
        path: destination; missing parent folders are created.
        rows: rows of values, written with ``str``.
        header: optional first row.
        overwrite: replace an existing file.

    Returns:
        The written path.

    Raises:
        DataError: the file exists and ``overwrite`` is False, or it cannot be written.
    """
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    with _atomic_target(path, overwrite, DataError) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_text(path: PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write a text file (a config, a report) atomically.

    Raises:
        DataError: the file exists and ``overwrite`` is False, or it cannot be written.
    """
    path = Path(path)
    with _atomic_target(path, overwrite, DataError) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
