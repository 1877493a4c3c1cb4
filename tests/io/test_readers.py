"""Readers beyond nibabel: SimpleITK files, DICOM folders and 2-D images.

Tests needing SimpleITK skip cleanly without it (install the ``sitk`` extra).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest

from niftykit.errors import ImageError
from niftykit.io.image import read_image
from niftykit.io.readers import SUPPORTED_SUFFIXES, image_format, read_array

LPS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture
def sitk():
    return pytest.importorskip("SimpleITK")


def to_sitk(sitk, data: np.ndarray, affine: np.ndarray, vector: bool = False):
    """A SimpleITK image of ``(x, y, z[, c])`` data placed by a RAS affine (converted to LPS)."""
    image = sitk.GetImageFromArray(np.moveaxis(data, [0, 1, 2], [2, 1, 0]), isVector=vector)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((LPS @ affine[:3, :3] @ np.diag(1 / spacing)).ravel().tolist())
    image.SetOrigin((LPS @ affine[:3, 3]).tolist())
    return image


# ---------------------------------------------------------------- SimpleITK files


@pytest.mark.parametrize("suffix", [".nrrd", ".nhdr", ".mha", ".mhd"])
def test_sitk_file_matches_the_same_volume_as_nifti(sitk, tmp_path, write_nifti, volume, affine, suffix):
    nifti = read_image(write_nifti("ct.nii.gz", volume))
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(to_sitk(sitk, volume, affine), str(path))
    image = read_image(path)
    assert image.array.shape == (16, 20, 12, 1)
    assert image.array.dtype == np.float32 and image.array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(image.array, nifti.array, atol=1e-5)
    np.testing.assert_allclose(image.affine, nifti.affine, atol=1e-5)


def test_sitk_vector_pixels_become_channels(sitk, tmp_path, affine):
    data = np.random.default_rng(4).normal(size=(6, 7, 8, 3)).astype(np.float32)
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(to_sitk(sitk, data, affine, vector=True), str(path))
    array, matrix = read_array(path)
    assert array.shape == (6, 7, 8, 3) and array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(array, data)
    np.testing.assert_allclose(matrix, affine, atol=1e-5)


def test_sitk_2d_image_gets_a_slice(sitk, tmp_path):
    data = np.arange(5 * 7, dtype=np.int16).reshape(7, 5)  # SimpleITK (y, x)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing((0.5, 0.25))
    image.SetOrigin((3.0, 4.0))
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(image, str(path))
    read = read_image(path, kind="label")
    assert read.array.shape == (5, 7, 1, 1) and read.array.dtype == np.int32
    np.testing.assert_array_equal(read.array[:, :, 0, 0], data.T)
    np.testing.assert_allclose(read.affine[:3, 3], [-3.0, -4.0, 0.0])
    np.testing.assert_allclose(read.spacing, [0.5, 0.25, 1.0])


def test_sitk_label_is_int32(sitk, tmp_path, affine):
    data = np.random.default_rng(5).integers(0, 9, size=(6, 7, 8)).astype(np.uint8)
    path = tmp_path / "seg.nrrd"
    sitk.WriteImage(to_sitk(sitk, data, affine), str(path))
    image = read_image(path, kind="label")
    assert image.array.dtype == np.int32
    np.testing.assert_array_equal(image.array[..., 0], data)


def test_garbage_nrrd_names_the_file(sitk, tmp_path):
    path = tmp_path / "junk.nrrd"
    path.write_bytes(b"not an nrrd header" * 10)
    with pytest.raises(ImageError, match=r"cannot read .*junk\.nrrd: not a valid image") as info:
        read_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.mhd", "dicom_folder"])
def test_missing_simpleitk_is_one_actionable_line(tmp_path, monkeypatch, name):
    path = tmp_path / name
    if name == "dicom_folder":
        path.mkdir()
    else:
        path.write_bytes(b"header")
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # makes `import SimpleITK` fail
    what = "a DICOM folder" if name == "dicom_folder" else path.suffix
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(info.value) == f"{path}: reading {what} needs SimpleITK: pip install 'niftykit[sitk]'"


# ---------------------------------------------------------------- DICOM series


def write_dicom_series(sitk, image, folder: Path, series_uid: str) -> None:
    """Write a 3-D int16 SimpleITK image as one DICOM file per slice."""
    folder.mkdir(exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    d = image.GetDirection()
    orientation = "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        position = "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k)))
        tags = {
            "0008|0060": "CT", "0008|0021": time.strftime("%Y%m%d"), "0008|0031": time.strftime("%H%M%S"),
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid, "0008|0018": f"{series_uid}.{k}",
            "0020|0037": orientation, "0020|0032": position, "0020|0013": str(k),
            "0018|0050": str(image.GetSpacing()[2]),
        }
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid.rsplit('.', 1)[-1]}_{k}.dcm"))
        writer.Execute(plane)


@pytest.fixture
def dicom_volume(sitk):
    data = (np.arange(2 * 6 * 5).reshape(2, 6, 5) * 10 - 100).astype(np.int16)  # (z, y, x)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    return data, image


def test_dicom_folder_reads_as_a_volume(sitk, tmp_path, dicom_volume):
    data, image = dicom_volume
    write_dicom_series(sitk, image, tmp_path / "series", "1.2.826.0.1.3680043.2.1125.1.100")
    read = read_image(tmp_path / "series")
    assert read.array.shape == (5, 6, 2, 1)
    np.testing.assert_array_equal(read.array[..., 0], data.transpose(2, 1, 0))
    expected = np.diag([-0.7, -0.8, 2.5, 1.0])
    expected[:3, 3] = [-10.0, 20.0, 30.0]
    np.testing.assert_allclose(read.affine, expected, atol=1e-4)


def test_folder_with_two_series_is_refused(sitk, tmp_path, dicom_volume):
    _, image = dicom_volume
    for uid in ("1.2.826.0.1.3680043.2.1125.1.100", "1.2.826.0.1.3680043.2.1125.1.200"):
        write_dicom_series(sitk, image, tmp_path / "mixed", uid)
    with pytest.raises(ImageError, match=r"mixed: holds 2 DICOM series"):
        read_image(tmp_path / "mixed")


def test_folder_without_dicom_is_refused(sitk, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match=r"empty: no DICOM series"):
        read_image(tmp_path / "empty")


# ---------------------------------------------------------------- 2-D images


def test_grey_png_rows_are_x(tmp_path):
    data = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7)
    path = tmp_path / "xray.png"
    iio.imwrite(path, data)
    image = read_image(path)
    assert image.array.shape == (5, 7, 1, 1) and image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array[:, :, 0, 0], data)
    np.testing.assert_array_equal(image.affine, np.eye(4))


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_png_gives_channels(tmp_path, channels):
    data = np.random.default_rng(6).integers(0, 256, size=(6, 4, channels)).astype(np.uint8)
    path = tmp_path / "photo.PNG"
    iio.imwrite(path, data, extension=".png")
    image = read_image(path)
    assert image.array.shape == (6, 4, 1, channels)
    np.testing.assert_array_equal(image.array[:, :, 0, :], data)


def test_float_tiff_and_16_bit_png_keep_their_values(tmp_path):
    data = np.random.default_rng(7).normal(size=(9, 3)).astype(np.float32)
    iio.imwrite(tmp_path / "map.tif", data)
    np.testing.assert_array_equal(read_image(tmp_path / "map.tif").array[:, :, 0, 0], data)
    wide = (np.arange(12).reshape(3, 4) * 5000).astype(np.uint16)
    iio.imwrite(tmp_path / "wide.png", wide)
    np.testing.assert_array_equal(read_image(tmp_path / "wide.png").array[:, :, 0, 0], wide)


def test_jpeg_is_read(tmp_path):
    data = np.full((8, 16, 3), 128, dtype=np.uint8)
    iio.imwrite(tmp_path / "us.jpeg", data)
    image = read_image(tmp_path / "us.jpeg")
    assert image.array.shape == (8, 16, 1, 3)
    np.testing.assert_allclose(image.array, 128, atol=3)


def test_png_label_is_int32(tmp_path):
    data = np.random.default_rng(8).integers(0, 4, size=(5, 6)).astype(np.uint8)
    iio.imwrite(tmp_path / "mask.png", data)
    image = read_image(tmp_path / "mask.png", kind="label")
    assert image.array.dtype == np.int32
    np.testing.assert_array_equal(image.array[:, :, 0, 0], data)


def test_palette_png_label_gives_indices_and_image_gives_colours(tmp_path):
    from PIL import Image as PILImage

    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    palette = PILImage.fromarray(indices, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    palette.save(tmp_path / "seg.png")
    label = read_image(tmp_path / "seg.png", kind="label")
    np.testing.assert_array_equal(label.array[:, :, 0, 0], indices)
    colours = read_image(tmp_path / "seg.png")
    assert colours.array.shape == (2, 3, 1, 3)
    np.testing.assert_array_equal(colours.array[0, 2, 0], [0, 0, 255])


def test_non_integral_tiff_label_names_the_file(tmp_path):
    iio.imwrite(tmp_path / "prob.tif", np.full((4, 4), 0.5, dtype=np.float32))
    with pytest.raises(ImageError, match=r"prob\.tif.*non-integral"):
        read_image(tmp_path / "prob.tif", kind="label")


def test_multi_page_tiff_is_refused(tmp_path):
    iio.imwrite(tmp_path / "stack.tif", np.zeros((6, 5, 7), np.float32))
    with pytest.raises(ImageError, match=r"stack\.tif: cannot use an image of shape \(6, 5, 7\)"):
        read_image(tmp_path / "stack.tif")


def test_garbage_png_names_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png" * 10)
    with pytest.raises(ImageError, match=r"cannot read .*junk\.png: not a readable PNG image"):
        read_image(tmp_path / "junk.png")


# ---------------------------------------------------------------- routing and errors


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.nii.gz", "nibabel"), ("a.HDR", "nibabel"), ("a.mgz", "nibabel"), ("a.nhdr", "sitk"),
     ("a.mha", "sitk"), ("a.tiff", "planar"), ("a.jpg", "planar")],
)
def test_format_follows_the_suffix(tmp_path, name, expected):
    (tmp_path / name).write_bytes(b"x")
    assert image_format(tmp_path / name) == expected


def test_folder_is_dicom(tmp_path):
    assert image_format(tmp_path) == "dicom"


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    path = tmp_path / "scan.dat"
    path.write_bytes(b"data")
    with pytest.raises(ImageError, match=r"cannot read .*scan\.dat: unsupported file type") as info:
        read_image(path)
    message = str(info.value)
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES) and "\n" not in message


@pytest.mark.parametrize("name", ["empty.nii.gz", "empty.png", "empty.nrrd"])
def test_zero_byte_file(tmp_path, name):
    path = tmp_path / name
    path.touch()
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(info.value) == f"{path}: empty file (0 bytes)"


def test_folder_named_like_a_file(tmp_path):
    (tmp_path / "ct.nii.gz").mkdir()
    with pytest.raises(ImageError, match=r"ct\.nii\.gz: is a folder, not a file"):
        read_image(tmp_path / "ct.nii.gz")


def test_missing_folder(tmp_path):
    with pytest.raises(ImageError, match=r"series: file or folder not found"):
        read_image(tmp_path / "series")


def test_read_array_leaves_nibabel_formats_to_read_image(write_nifti, volume):
    with pytest.raises(ValueError, match="read_image"):
        read_array(write_nifti("ct.nii", volume))


def test_nifti_through_nibabel_still_matches(write_nifti, volume):
    path = write_nifti("ct.nii.gz", volume)
    np.testing.assert_array_equal(read_image(path).affine, nib.load(path).affine)
