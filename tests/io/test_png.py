"""2-D radiograph files: 8/16-bit PNG round trips, pixel spacing, colour to grey, single DICOM files."""

import imageio.v3 as iio
import numpy as np
import pytest

from niftykit.io import read_image
from niftykit.io.readers import image_format, planar_affine, planar_to_grey, read_planar


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_png_round_trip_keeps_bits_and_layout(tmp_path, dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    film = rng.integers(0, top, (20, 13), endpoint=True).astype(dtype)
    film[0, 0], film[-1, -1] = 0, top  # the full range survives
    iio.imwrite(tmp_path / "film.png", film)
    array, affine = read_planar(tmp_path / "film.png")
    assert array.dtype == dtype and array.shape == (20, 13, 1, 1)  # (rows, columns, 1, channels)
    np.testing.assert_array_equal(array[:, :, 0, 0], film)
    np.testing.assert_array_equal(affine, np.eye(4))
    image = read_image(tmp_path / "film.png")
    assert image.array.dtype == np.float32 and image.array.max() == top
    np.testing.assert_array_equal(image.spacing, [1.0, 1.0, 1.0])


def test_pixel_spacing_affine():
    affine = planar_affine((0.143, 0.2))
    np.testing.assert_array_equal(affine, np.diag([0.143, 0.2, 1.0, 1.0]))
    with pytest.raises(ValueError, match="pixel_spacing must be 2 positive numbers"):
        planar_affine((0.1, 0.0))


def test_rgb_to_grey_uses_bt601_and_drops_alpha(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 255
    iio.imwrite(tmp_path / "us.png", rgba)
    array, _ = read_planar(tmp_path / "us.png")
    assert array.shape == (4, 5, 1, 4)  # kept as channels when read
    grey = planar_to_grey(array)
    assert grey.shape == (4, 5, 1, 1)
    np.testing.assert_allclose(grey, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-6)
    single = array[..., :1]
    np.testing.assert_array_equal(planar_to_grey(single), single)  # grey stays as it is
    with pytest.raises(ValueError, match="1-4 channels"):
        planar_to_grey(np.zeros((2, 2, 1, 5)))


def test_single_dicom_file_reads_with_its_pixel_spacing(tmp_path):
    sitk = pytest.importorskip("SimpleITK")  # the `sitk` extra, installed by `make test`
    film = (np.arange(6 * 9, dtype=np.uint16).reshape(6, 9) * 100)  # 6 rows, 9 columns
    image = sitk.GetImageFromArray(film)
    image.SetSpacing((0.2, 0.3))  # ITK: (column spacing, row spacing)
    sitk.WriteImage(image, str(tmp_path / "cxr.dcm"))
    assert image_format(tmp_path / "cxr.dcm") == "sitk"
    read = read_image(tmp_path / "cxr.dcm")
    assert read.array.shape == (9, 6, 1, 1)  # ITK's x runs along a row
    np.testing.assert_array_equal(read.array[:, :, 0, 0], film.T)
    np.testing.assert_allclose(read.spacing[:2], [0.2, 0.3])
