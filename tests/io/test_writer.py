from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from niftykit.errors import DataError, ImageError
from niftykit.io import read_image, write_csv, write_image


def test_round_trip_affine_shape_dtype(tmp_path, volume, affine):
    path = write_image(volume, affine, tmp_path / "out.nii.gz")
    loaded = nib.load(path)
    np.testing.assert_allclose(loaded.affine, affine, atol=1e-5)
    np.testing.assert_allclose(loaded.header.get_sform(), affine, atol=1e-5)
    np.testing.assert_allclose(loaded.header.get_qform(), affine, atol=1e-5)
    assert int(loaded.header["sform_code"]) == 1 and int(loaded.header["qform_code"]) == 1
    assert loaded.shape == (16, 20, 12)
    assert loaded.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), volume)


def test_uncompressed_suffix_writes_plain_nifti(tmp_path, volume, affine):
    path = write_image(volume, affine, tmp_path / "out.nii")
    assert path.read_bytes()[344:348] == b"n+1\x00"


def test_trailing_single_channel_is_dropped_and_channels_kept(tmp_path, volume, affine):
    one = write_image(volume[..., None], affine, tmp_path / "one.nii.gz")
    two = write_image(np.stack([volume, volume], -1), affine, tmp_path / "two.nii.gz")
    assert nib.load(one).shape == (16, 20, 12)
    assert nib.load(two).shape == (16, 20, 12, 2)


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [(np.int16, np.int16), (np.uint8, np.uint8), (np.int64, np.int32), (np.bool_, np.uint8), (np.float64, np.float64)],
)
def test_dtypes_stay_integer_or_float(tmp_path, affine, dtype, stored):
    data = (np.arange(4 * 4 * 4).reshape(4, 4, 4) % 2).astype(dtype)
    loaded = nib.load(write_image(data, affine, tmp_path / "seg.nii.gz"))
    assert loaded.get_data_dtype() == stored
    np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), data.astype(stored))


def test_label_round_trip_through_read_image(tmp_path, affine):
    labels = np.random.default_rng(0).integers(0, 9, size=(8, 8, 8)).astype(np.int64)
    image = read_image(write_image(labels, affine, tmp_path / "seg.nii.gz"), kind="label")
    np.testing.assert_array_equal(image.array[..., 0], labels)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)


def test_refuses_to_overwrite(tmp_path, volume, affine):
    path = write_image(volume, affine, tmp_path / "out.nii.gz")
    before = path.read_bytes()
    with pytest.raises(ImageError, match=r"out\.nii\.gz exists; .*overwrite"):
        write_image(volume * 2, affine, path)
    assert path.read_bytes() == before


def test_overwrite_replaces(tmp_path, volume, affine):
    path = write_image(volume, affine, tmp_path / "out.nii.gz")
    write_image(volume * 2, affine, path, overwrite=True)
    np.testing.assert_allclose(np.asanyarray(nib.load(path).dataobj), volume * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_creates_parent_folders(tmp_path, volume, affine):
    path = write_image(volume, affine, tmp_path / "a" / "b" / "out.nii.gz")
    assert path.is_file()


def test_failed_save_leaves_no_file(tmp_path, volume, affine, monkeypatch):
    def broken_save(img, filename):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(volume, affine, tmp_path / "out.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, volume, affine, monkeypatch):
    path = write_image(volume, affine, tmp_path / "out.nii.gz")
    before = path.read_bytes()
    monkeypatch.setattr(nib, "save", lambda img, filename: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(ImageError, match=r"cannot write .*out\.nii\.gz: No space left"):
        write_image(volume, affine, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_non_nifti_suffix_is_refused(tmp_path, volume, affine):
    with pytest.raises(ImageError, match=r"out\.mha.*\.nii or \.nii\.gz"):
        write_image(volume, affine, tmp_path / "out.mha")


def test_write_csv_header_rows_and_overwrite(tmp_path):
    path = write_csv(tmp_path / "t" / "table.csv", [("a", 1), ("b", 2)], header=("subject_id", "n"))
    assert path.read_text() == "subject_id,n\na,1\nb,2\n"
    with pytest.raises(DataError, match=r"table\.csv exists"):
        write_csv(path, [("c", 3)])
    write_csv(path, [("c", 3)], overwrite=True)
    assert path.read_text() == "c,3\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]
