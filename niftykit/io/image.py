"""The in-memory image: a C-ordered array on a voxel grid, and its reader.

Every image in niftykit is 4-D, ``(x, y, z, channels)``: 2-D images get a
single slice, single-modality images a single channel. nibabel hands back
Fortran-ordered arrays; cutting windows from them is about 15 times slower
than from a C-ordered copy, so the reader converts once, at load.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from niftykit.errors import ImageError
from niftykit.io.readers import image_format, read_array
from niftykit.typing import PathLike, Shape3

__all__ = ["Image", "read_image", "stack_channels", "check_same_grid"]

#: Largest affine difference (mm) still counted as the same voxel grid.
GRID_ATOL_MM = 1e-3
_KINDS = ("image", "label")
_INT32 = np.iinfo(np.int32)
#: z planes per tile of the Fortran- to C-order copy (16 float32: one 64-byte cache line).
_TILE_Z = 16


@dataclass
class Image:
    """A multi-channel volume and where it lies in space.

    Attributes:
        array: ``(x, y, z, channels)`` C-contiguous array; float32 for
            intensity images, int32 for label maps.
        affine: ``(4, 4)`` float64 matrix mapping voxel indices to RAS+
            world coordinates in mm (nibabel convention).
        path: the file the image was read from, if any (used in messages).
        xform_codes: the NIfTI ``(qform_code, sform_code)`` of the file, so that
            outputs written on its grid carry the same codes; None when the
            format has none.
    """

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    xform_codes: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != 4:
            raise ValueError(f"Image.array must be (x, y, z, channels), got shape {self.array.shape}")
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"Image.affine must be (4, 4), got {self.affine.shape}")

    @property
    def spatial_shape(self) -> Shape3:
        """``(x, y, z)`` size in voxels."""
        x, y, z = self.array.shape[:3]
        return int(x), int(y), int(z)

    @property
    def spacing(self) -> np.ndarray:
        """``(3,)`` voxel size in mm along x, y, z (column norms of the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def num_channels(self) -> int:
        """Number of channels (modalities, or 1)."""
        return int(self.array.shape[3])


def _describe(path: Path | None) -> str:
    return str(path) if path is not None else "<in-memory image>"


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad header
        raise ImageError(f"cannot read {path}: {_short_reason(exc)}") from exc


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, (EOFError, zlib.error)):
        return f"file is truncated or corrupt ({exc})"
    if isinstance(exc, ImageFileError):
        return "not a valid NIfTI or other nibabel image (bad or truncated header)"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _to_4d(data: np.ndarray, path: Path) -> np.ndarray:
    shape = data.shape
    if data.ndim == 2:
        return data.reshape(shape + (1, 1))
    if data.ndim == 3:
        return data.reshape(shape + (1,))
    if data.ndim == 4:
        return data
    if data.ndim == 5 and shape[3] == 1:
        return data.reshape(shape[:3] + shape[4:])
    raise ImageError(
        f"{path}: cannot use an image of shape {shape}; expected (x, y), (x, y, z), "
        "(x, y, z, channels) or NiftyNet's (x, y, z, 1, channels)"
    )


def _as_intensities(data: np.ndarray, path: Path, nonfinite: float | None = None) -> np.ndarray:
    """Intensities checked for NaN/Inf. Whole numbers are returned as they are (they are
    finite, also as float32): their cast to float32 comes with the C-order copy."""
    if data.dtype.kind in "biu":
        return data
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    bad = int(data.size - np.count_nonzero(finite))
    if bad and nonfinite is None:
        raise ImageError(
            f"{path}: contains {bad} NaN/Inf voxels; replace them, or set replace_nonfinite "
            "(e.g. the background value) in the input section"
        )
    if bad:
        data = np.where(finite, data, np.float32(nonfinite))
    return data


def _as_labels(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype.kind in "biu":
        if data.size and (data.min() < _INT32.min or data.max() > _INT32.max):
            raise ImageError(f"{path}: label values exceed the int32 range")
        return data  # cast to int32 with the C-order copy
    if data.dtype.kind != "f" or not np.all(np.isfinite(data)) or np.any(data != np.round(data)):
        raise ImageError(
            f"{path}: label map has non-integral values (dtype {data.dtype}); "
            "labels must be whole numbers (is this an intensity image, or a label map resampled with interp_order > 0?)"
        )
    return data.astype(np.int32)


def _voxels(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    """The voxel values of ``img.get_fdata(dtype=np.float32)``, in the file's dtype when the
    file stores plain numbers without scaling (``get_fdata`` would only cast them to float32;
    the cast then comes with the C-order copy, one pass instead of two)."""
    proxy = img.dataobj
    if (nib.is_proxy(proxy) and np.dtype(getattr(proxy, "dtype", object)).kind in "biuf"
            and getattr(proxy, "slope", None) == 1.0 and getattr(proxy, "inter", None) == 0.0):
        return np.asanyarray(proxy)
    return img.get_fdata(dtype=np.float32)


def _c_order(data: np.ndarray, dtype: type) -> np.ndarray:
    """``data`` as a C-contiguous ``dtype`` array (itself, or a view, when it already is one).

    nibabel reads Fortran-ordered arrays. ``numpy.ascontiguousarray`` copies them in the order
    of the output, so that consecutive reads lie one x-y plane apart (0.5 MB in a 512x512 CT)
    and nearly every read misses the cache. Copying tiles of whole x rows by ``_TILE_Z`` z
    planes, one y at a time, keeps the source rows and the output lines of a tile in cache
    (the ``read_image`` row of ``benchmarks/bench_preprocessing.py`` times it with the read).
    """
    if data.ndim < 3 or data.flags.c_contiguous or not data.flags.f_contiguous:
        return np.ascontiguousarray(data, dtype=dtype)
    out = np.empty(data.shape, dtype=dtype)
    for y in range(data.shape[1]):
        for z in range(0, data.shape[2], _TILE_Z):
            out[:, y, z:z + _TILE_Z] = data[:, y, z:z + _TILE_Z]
    return out


def _xform_codes(img: nib.spatialimages.SpatialImage) -> tuple[int, int] | None:
    header = img.header
    if not isinstance(header, nib.Nifti1Header):  # NIfTI-2 subclasses it
        return None
    return int(header["qform_code"]), int(header["sform_code"])


def _read_nibabel(path: Path, kind: str,
                  nonfinite: float | None) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    img = _load(path)
    try:
        if kind == "label":
            data = _as_labels(np.asanyarray(img.dataobj), path)
        else:
            data = _as_intensities(_voxels(img), path, nonfinite)
    except ImageError:
        raise
    except Exception as exc:  # truncated gzip, short data block, bad scaling...
        raise ImageError(f"cannot read {path}: {_short_reason(exc)}") from exc
    return data, np.array(img.affine, dtype=np.float64), _xform_codes(img)


def read_image(path: PathLike, kind: str = "image", *, nonfinite: float | None = None) -> Image:
    """Read an image file, or a folder holding one DICOM series.

    Formats (see :mod:`niftykit.io.readers`): NIfTI-1/2 (``.nii``,
    ``.nii.gz``), Analyze (``.hdr``/``.img``) and MGH (``.mgh``, ``.mgz``)
    through nibabel; NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
    ``.mhd``) and DICOM folders through SimpleITK (optional extra ``sitk``);
    2-D ``.png``, ``.tif``/``.tiff`` and ``.jpg``/``.jpeg`` as ``(rows,
    columns, 1, channels)`` with an identity affine (1 mm pixels).

    Shapes are normalised to ``(x, y, z, channels)``: a 2-D ``(x, y)`` image
    becomes ``(x, y, 1, 1)``, 3-D gets one channel, 4-D keeps its last axis as
    channels and NiftyNet's 5-D ``(x, y, z, 1, channels)`` drops the time axis.

    Args:
        path: image file, or DICOM series folder.
        kind: ``"image"`` (float32 intensities, NaN/Inf rejected) or
            ``"label"`` (whole-number values stored as int32; a palette PNG
            gives its indices).
        nonfinite: for images, the value that replaces NaN/Inf voxels; None
            (the default) makes them an error.

    Returns:
        The image with a C-contiguous array and its voxel-to-mm (RAS+) affine.

    Raises:
        ImageError: the file is missing, empty, of an unsupported type,
            unreadable, truncated, needs SimpleITK when it is not installed,
            has an unsupported shape, NaN/Inf intensities or non-integral labels.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    path = Path(path)
    codes = None
    if image_format(path) == "nibabel":
        data, affine, codes = _read_nibabel(path, kind, nonfinite)
    else:
        data, affine = read_array(path, palette_indices=kind == "label")
        data = (_as_labels(data, path) if kind == "label"
                else _as_intensities(data, path, nonfinite))
    dtype = np.int32 if kind == "label" else np.float32
    return Image(array=_c_order(_to_4d(data, path), dtype), affine=affine, path=path, xform_codes=codes)


def check_same_grid(a: Image, b: Image, atol: float = GRID_ATOL_MM) -> None:
    """Check that two images share a voxel grid (spatial shape and affine).

    Affines are compared element-wise with an absolute tolerance of ``atol``
    mm (``system.grid_tolerance_mm``, default ``GRID_ATOL_MM`` = 1e-3 mm).

    Raises:
        ImageError: naming both files and how their grids differ.
    """
    names = f"{_describe(a.path)} and {_describe(b.path)}"
    if a.spatial_shape != b.spatial_shape:
        raise ImageError(
            f"{names} are not on the same voxel grid: spatial shapes {a.spatial_shape} and {b.spatial_shape} "
            "differ; resample one onto the other (or set the same pixdim/axcodes for both sources)"
        )
    if not np.allclose(a.affine, b.affine, rtol=0.0, atol=atol):
        diff = float(np.max(np.abs(a.affine - b.affine)))
        raise ImageError(
            f"{names} are not on the same voxel grid: affines differ by up to {diff:.4g} mm "
            f"(tolerance {atol} mm, system.grid_tolerance_mm); resample one onto the other"
        )


def stack_channels(images: Sequence[Image]) -> Image:
    """Concatenate images on one grid along the channel axis.

    Args:
        images: images with equal spatial shape and affine, ``(x, y, z, c_i)``.

    Returns:
        ``(x, y, z, sum c_i)`` image with the first image's affine and path.

    Raises:
        ImageError: two images are not on the same grid.
    """
    if not images:
        raise ValueError("stack_channels needs at least one image")
    first = images[0]
    for other in images[1:]:
        check_same_grid(first, other)
    array = np.concatenate([im.array for im in images], axis=-1)
    return Image(array=np.ascontiguousarray(array), affine=first.affine.copy(), path=first.path,
                 xform_codes=first.xform_codes)
