"""Readers for the formats nibabel does not cover: SimpleITK and 2-D images.

:func:`image_format` names the reader a path needs (and rejects missing,
empty and unknown files); :func:`read_array` reads the non-nibabel formats.
nibabel formats (NIfTI-1/2, Analyze, MGH/MGZ) are read by
:func:`niftykit.io.image.read_image` itself. A single ``.dcm`` file (a 2-D
radiograph or ultrasound frame, or a multi-frame object) is read by SimpleITK
like NRRD; a folder of ``.dcm`` files is one series.

2-D images (PNG 8/16-bit, TIFF, JPEG) carry no spacing: they are read with 1 mm
pixels, and :func:`planar_affine` and :func:`planar_to_grey` give the affine of a
known pixel spacing and the grey version of a colour image (the classification
application applies them from ``inputs.<name>.pixel_spacing`` and ``rgb_to_grey``).

Every reader returns ``(array, affine)``: a C-contiguous ``(x, y, z, channels)``
array in the file's own dtype and a ``(4, 4)`` float64 voxel-to-RAS+ affine in
mm, the nibabel convention. SimpleITK is imported inside the functions that
need it, so it stays an optional extra (``pip install 'niftykit[sitk]'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from niftykit.errors import ImageError
from niftykit.typing import PathLike

__all__ = [
    "NIBABEL_SUFFIXES",
    "PLANAR_SUFFIXES",
    "SITK_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "image_format",
    "planar_affine",
    "planar_to_grey",
    "read_array",
    "read_dicom_series",
    "read_planar",
    "read_sitk",
]

#: Read by nibabel: NIfTI-1/2, Analyze (``.hdr``/``.img`` pair) and MGH.
NIBABEL_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".img", ".mgz", ".mgh")
#: Read by SimpleITK (optional): NRRD, MetaImage and single DICOM files. A folder is a DICOM series.
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
#: 2-D images read by imageio (pillow or tifffile), scikit-image's own reader.
PLANAR_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
SUPPORTED_SUFFIXES = NIBABEL_SUFFIXES + SITK_SUFFIXES + PLANAR_SUFFIXES
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUPPORTED_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def image_format(path: PathLike) -> str:
    """Which reader a path needs.

    Args:
        path: an image file, or a folder holding one DICOM series.

    Returns:
        ``"nibabel"``, ``"sitk"``, ``"dicom"`` (a folder) or ``"planar"`` (2-D image).

    Raises:
        ImageError: the path does not exist, is an empty file, is a folder
            with an image-file suffix, or has an unsupported suffix.
    """
    path = Path(path)
    suffix = _suffix(path)
    if path.is_dir():
        if suffix is not None:
            raise ImageError(f"cannot read {path}: is a folder, not a file")
        return "dicom"
    if not path.is_file():
        raise ImageError(f"cannot read {path}: {'file' if suffix else 'file or folder'} not found")
    if suffix is None:
        raise ImageError(
            f"cannot read {path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)} "
            "or a folder holding one DICOM series"
        )
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    if suffix in NIBABEL_SUFFIXES:
        return "nibabel"
    return "sitk" if suffix in SITK_SUFFIXES else "planar"


def read_array(path: PathLike, *, palette_indices: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a SimpleITK file, a DICOM folder or a 2-D image.

    Args:
        path: a ``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file, a folder holding
            one DICOM series, or a ``.png``/``.tif``/``.tiff``/``.jpg``/``.jpeg``.
        palette_indices: return a palette PNG's indices rather than its
            colours (for label maps).

    Returns:
        ``(array, affine)``: ``(x, y, z, channels)`` C-contiguous array in the
        file's dtype and the ``(4, 4)`` voxel-to-RAS+ affine in mm.

    Raises:
        ImageError: the path is missing, empty, of an unknown type or
            unreadable, SimpleITK is missing, or the shape is unsupported.
        ValueError: the path is a nibabel format (use ``read_image``).
    """
    path = Path(path)
    kind = image_format(path)
    if kind == "dicom":
        return read_dicom_series(path)
    if kind == "sitk":
        return read_sitk(path)
    if kind == "planar":
        return read_planar(path, palette_indices=palette_indices)
    raise ValueError(f"read_array does not read nibabel formats ({path}); use read_image")


def _import_sitk(path: Path, what: str):
    try:
        import SimpleITK as sitk
    except ImportError:
        raise ImageError(f"{path}: reading {what} needs SimpleITK: pip install 'niftykit[sitk]'") from None
    return sitk


def _sitk_reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    if "Unable to determine ImageIO reader" in last:
        return "not a valid image of this type (SimpleITK cannot read it)"
    return last.removeprefix("sitk::ERROR:").strip()


def _affine_from_sitk(direction: np.ndarray, spacing: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Voxel-to-RAS+ affine from SimpleITK's LPS direction ``(3, 3)``, spacing and origin (mm)."""
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = _LPS_TO_RAS @ origin
    return affine


def _from_sitk(sitk, image, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y, z, c)`` array and RAS affine of a 2-D or 3-D SimpleITK image (vector pixels -> channels)."""
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise ImageError(f"{path}: cannot use a {dim}-D image; expected 2-D or 3-D (vector pixels become channels)")
    data = sitk.GetArrayFromImage(image)  # (z, y, x[, c]) or (y, x[, c])
    if image.GetNumberOfComponentsPerPixel() == 1:
        data = data[..., np.newaxis]
    data = np.moveaxis(data, list(range(dim)), list(range(dim))[::-1])  # -> (x, y[, z], c)
    direction, spacing, origin = np.eye(3), np.ones(3), np.zeros(3)
    direction[:dim, :dim] = np.reshape(image.GetDirection(), (dim, dim))
    spacing[:dim], origin[:dim] = image.GetSpacing(), image.GetOrigin()
    if dim == 2:
        data = data[:, :, np.newaxis, :]
    return np.ascontiguousarray(data), _affine_from_sitk(direction, spacing, origin)


def read_sitk(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``, ``.mhd``) or single DICOM
    (``.dcm``) file with SimpleITK.

    A single-frame DICOM (a radiograph, an ultrasound frame) becomes ``(columns,
    rows, 1, channels)`` (ITK's x runs along a row) with the header's pixel spacing
    and geometry; RGB (ultrasound) pixels become 3 channels. Note that a PNG of the
    same picture is ``(rows, columns, 1, channels)``: do not mix the two in one input.

    SimpleITK's ``(z, y, x)`` array is transposed to ``(x, y, z)`` and its LPS
    geometry turned into a RAS+ affine:
    ``affine[:3, :3] = diag(-1, -1, 1) @ direction @ diag(spacing)``,
    ``affine[:3, 3] = diag(-1, -1, 1) @ origin``. Vector pixels become channels.

    Returns:
        ``(array, affine)`` as :func:`read_array`.

    Raises:
        ImageError: SimpleITK is missing or cannot read the file.
    """
    path = Path(path)
    sitk = _import_sitk(path, _suffix(path) or path.suffix)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ImageError(f"cannot read {path}: {_sitk_reason(exc)}") from exc
    return _from_sitk(sitk, image, path)


def read_dicom_series(folder: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the one DICOM series in a folder with SimpleITK's GDCM series reader.

    Slices are ordered by GDCM (along the slice normal); rescale slope and
    intercept are applied by SimpleITK.

    Returns:
        ``(array, affine)`` as :func:`read_array`.

    Raises:
        ImageError: SimpleITK is missing, the folder holds no DICOM series or
            more than one, or the series cannot be read.
    """
    folder = Path(folder)
    sitk = _import_sitk(folder, "a DICOM folder")
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise ImageError(f"{folder}: no DICOM series found in this folder")
    if len(series) > 1:
        raise ImageError(
            f"{folder}: holds {len(series)} DICOM series; put each series in its own folder and give that folder"
        )
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), series[0]))
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageError(f"cannot read DICOM series in {folder}: {_sitk_reason(exc)}") from exc
    return _from_sitk(sitk, image, folder)


def _imread(path: Path, palette_indices: bool) -> np.ndarray:
    import imageio.v3 as iio  # a dependency of scikit-image; its own reader

    plugin = "tifffile" if path.name.lower().endswith((".tif", ".tiff")) else "pillow"
    try:
        if palette_indices and plugin == "pillow" and iio.immeta(path, plugin=plugin).get("mode") == "P":
            return np.asarray(iio.imread(path, plugin=plugin, mode="P"))
        return np.asarray(iio.imread(path, plugin=plugin))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read {path}: not a readable {path.suffix.lstrip('.').upper()} image") from exc


def read_planar(path: PathLike, *, palette_indices: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a 2-D PNG, TIFF or JPEG image.

    The first array axis (image rows, top to bottom) becomes x and the second
    (columns, left to right) becomes y, so the result is ``(rows, columns, 1,
    channels)``: grey gives 1 channel, grey+alpha 2, RGB 3, RGBA 4 (kept as
    channels; :func:`planar_to_grey` makes them one). The file's dtype is kept:
    uint8 for 8-bit, uint16 for 16-bit grey PNGs (radiographs). Pixels are taken
    as 1 mm squares: the affine is the identity (:func:`planar_affine` for a known
    spacing). Multi-page TIFF stacks are refused (convert them to NIfTI with their
    spacing).

    Args:
        path: the image file.
        palette_indices: return a palette PNG's indices instead of colours.

    Returns:
        ``(array, affine)`` as :func:`read_array`.

    Raises:
        ImageError: the file cannot be decoded or is not a 2-D image.
    """
    path = Path(path)
    data = _imread(path, palette_indices)
    if data.ndim == 2:
        data = data[..., np.newaxis]
    if data.ndim != 3 or not 1 <= data.shape[2] <= 4:
        raise ImageError(
            f"{path}: cannot use an image of shape {data.shape}; expected a 2-D grey, grey+alpha, RGB or RGBA image "
            "(convert multi-page stacks to NIfTI)"
        )
    return np.ascontiguousarray(data[:, :, np.newaxis, :]), np.eye(4)


#: ITU-R BT.601 luma weights of R, G, B (what Pillow's ``convert("L")`` uses).
_LUMA = (0.299, 0.587, 0.114)


def planar_affine(pixel_spacing: tuple[float, float]) -> np.ndarray:
    """The affine of a 2-D image read by :func:`read_planar` with known pixel spacing.

    Args:
        pixel_spacing: ``(row spacing, column spacing)`` in mm, i.e. along x
            (down the rows) and y (along a row), DICOM's ``PixelSpacing`` order.

    Returns:
        ``diag(row, column, 1, 1)``, a ``(4, 4)`` float64 voxel-to-mm affine.

    Raises:
        ValueError: a spacing is not a positive number, or not two values.
    """
    spacing = np.asarray(pixel_spacing, dtype=np.float64).reshape(-1)
    if spacing.size != 2 or not np.all(spacing > 0):
        raise ValueError(f"pixel_spacing must be 2 positive numbers in mm (rows, columns), got {pixel_spacing}")
    return np.diag([spacing[0], spacing[1], 1.0, 1.0])


def planar_to_grey(array: np.ndarray) -> np.ndarray:
    """One grey channel from a ``(x, y, z, channels)`` 2-D image's channels.

    RGB and RGBA give the BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (alpha
    dropped); grey+alpha gives its grey channel; one channel is returned as is.

    Args:
        array: ``(x, y, z, c)`` with ``c`` in 1–4.

    Returns:
        ``(x, y, z, 1)``: float32 for colour input, the input's dtype otherwise.

    Raises:
        ValueError: ``array`` is not 4-D with 1 to 4 channels.
    """
    if array.ndim != 4 or not 1 <= array.shape[3] <= 4:
        raise ValueError(f"expected an (x, y, z, channels) image with 1-4 channels, got shape {array.shape}")
    if array.shape[3] <= 2:
        return np.ascontiguousarray(array[..., :1])
    grey = np.tensordot(array[..., :3].astype(np.float32), np.asarray(_LUMA, np.float32), axes=([3], [0]))
    return np.ascontiguousarray(grey[..., np.newaxis])
