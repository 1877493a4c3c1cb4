from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from niftykit.errors import ImageError
from niftykit.io import Image, check_same_grid, read_image, stack_channels


def test_3d_is_c_ordered_float32_with_one_channel(write_nifti, volume):
    path = write_nifti("ct.nii.gz", volume.astype(np.float64))
    image = read_image(path)
    assert image.array.shape == (16, 20, 12, 1)
    assert image.array.dtype == np.float32
    assert image.array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(image.array[..., 0], volume, rtol=1e-6)
    assert image.path == path


def test_affine_spacing_and_shape_follow_nibabel(write_nifti, volume, affine):
    path = write_nifti("ct.nii", volume)
    image = read_image(path)
    np.testing.assert_array_equal(image.affine, nib.load(path).affine)
    assert image.affine.dtype == np.float64
    np.testing.assert_allclose(image.spacing, [1.5, 0.8, 2.0], rtol=1e-6)
    assert image.spatial_shape == (16, 20, 12)
    assert image.num_channels == 1


def test_2d_gets_a_slice_and_a_channel(write_nifti):
    data = np.arange(6 * 7, dtype=np.float32).reshape(6, 7)
    image = read_image(write_nifti("xray.nii.gz", data))
    assert image.array.shape == (6, 7, 1, 1)
    np.testing.assert_array_equal(image.array[:, :, 0, 0], data)


def test_4d_last_axis_is_channels(write_nifti):
    data = np.random.default_rng(1).normal(size=(8, 9, 10, 3)).astype(np.float32)
    image = read_image(write_nifti("mr.nii.gz", data))
    assert image.array.shape == (8, 9, 10, 3)
    np.testing.assert_array_equal(image.array[..., 2], data[..., 2])
    assert image.array.flags["C_CONTIGUOUS"]


def test_niftynet_5d_drops_time_axis(write_nifti):
    data = np.random.default_rng(2).normal(size=(8, 9, 10, 1, 2)).astype(np.float32)
    image = read_image(write_nifti("mr5d.nii.gz", data))
    assert image.array.shape == (8, 9, 10, 2)
    np.testing.assert_array_equal(image.array[..., 1], data[:, :, :, 0, 1])


def test_5d_with_time_points_is_rejected(write_nifti):
    path = write_nifti("dyn.nii.gz", np.zeros((4, 4, 4, 2, 2), np.float32))
    with pytest.raises(ImageError, match=r"dyn\.nii\.gz.*\(4, 4, 4, 2, 2\)"):
        read_image(path)


def test_label_is_int32(write_nifti):
    data = np.random.default_rng(3).integers(0, 5, size=(8, 8, 8)).astype(np.int16)
    image = read_image(write_nifti("seg.nii.gz", data), kind="label")
    assert image.array.dtype == np.int32
    assert image.array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(image.array[..., 0], data)


def test_label_stored_as_whole_floats_is_accepted(write_nifti):
    data = np.array([[[0.0, 1.0], [2.0, 3.0]]] * 2, dtype=np.float32)
    image = read_image(write_nifti("seg.nii.gz", data), kind="label")
    np.testing.assert_array_equal(image.array[..., 0], data.astype(np.int32))


def test_non_integral_label_names_the_file(write_nifti):
    data = np.full((4, 4, 4), 0.5, dtype=np.float32)
    path = write_nifti("blurred_label.nii.gz", data)
    with pytest.raises(ImageError, match=r"blurred_label\.nii\.gz.*non-integral"):
        read_image(path, kind="label")


def test_nan_image_names_the_file_and_count(write_nifti, volume):
    volume[0, 0, :3] = np.nan
    volume[1, 1, 1] = np.inf
    path = write_nifti("bad.nii.gz", volume)
    with pytest.raises(ImageError, match=r"bad\.nii\.gz: contains 4 NaN/Inf voxels"):
        read_image(path)


def test_truncated_gzip_names_the_file(write_nifti, volume):
    path = write_nifti("cut.nii.gz", volume)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match=r"cannot read .*cut\.nii\.gz"):
        read_image(path)


def test_gzip_holding_a_short_data_block_is_an_image_error(tmp_path, write_nifti, volume):
    whole = gzip.decompress(write_nifti("full.nii.gz", volume).read_bytes())
    path = tmp_path / "short.nii.gz"
    path.write_bytes(gzip.compress(whole[: len(whole) - 100]))
    with pytest.raises(ImageError, match=r"cannot read .*short\.nii\.gz"):
        read_image(path)


def test_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "junk.nii"
    path.write_bytes(b"this is not a NIfTI header" * 20)
    with pytest.raises(ImageError, match=r"cannot read .*junk\.nii"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"cannot read .*absent\.nii\.gz: file not found"):
        read_image(tmp_path / "absent.nii.gz")


def test_unknown_kind_is_a_programming_error(write_nifti, volume):
    with pytest.raises(ValueError, match="kind"):
        read_image(write_nifti("ct.nii.gz", volume), kind="mask")


def test_same_grid_passes_within_tolerance(affine):
    a = Image(np.zeros((4, 5, 6, 1), np.float32), affine)
    shifted = affine.copy()
    shifted[0, 3] += 5e-4
    check_same_grid(a, Image(np.zeros((4, 5, 6, 2), np.float32), shifted))


def test_grid_shape_mismatch_names_both_files(tmp_path, affine):
    a = Image(np.zeros((4, 5, 6, 1), np.float32), affine, tmp_path / "ct.nii.gz")
    b = Image(np.zeros((4, 5, 7, 1), np.float32), affine, tmp_path / "label.nii.gz")
    with pytest.raises(ImageError, match=r"ct\.nii\.gz and .*label\.nii\.gz.*\(4, 5, 6\) and \(4, 5, 7\)"):
        check_same_grid(a, b)


def test_grid_affine_mismatch_gives_the_difference(tmp_path, affine):
    moved = affine.copy()
    moved[2, 3] += 0.25
    a = Image(np.zeros((4, 5, 6, 1), np.float32), affine, tmp_path / "ct.nii.gz")
    b = Image(np.zeros((4, 5, 6, 1), np.float32), moved, tmp_path / "label.nii.gz")
    with pytest.raises(ImageError, match=r"ct\.nii\.gz and .*label\.nii\.gz.*0\.25 mm"):
        check_same_grid(a, b)


def test_stack_channels_concatenates_in_order(write_nifti, volume):
    t1 = read_image(write_nifti("t1.nii.gz", volume))
    t2 = read_image(write_nifti("t2.nii.gz", 2 * volume))
    stacked = stack_channels([t1, t2])
    assert stacked.array.shape == (16, 20, 12, 2)
    assert stacked.array.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(stacked.array[..., 1], 2 * volume, rtol=1e-6)
    np.testing.assert_array_equal(stacked.affine, t1.affine)


def test_stack_channels_refuses_other_grids(write_nifti, volume):
    t1 = read_image(write_nifti("t1.nii.gz", volume))
    t2 = read_image(write_nifti("t2.nii.gz", volume[:, :, :6]))
    with pytest.raises(ImageError, match=r"t1\.nii\.gz and .*t2\.nii\.gz"):
        stack_channels([t1, t2])


def test_image_rejects_non_4d_arrays():
    with pytest.raises(ValueError, match="channels"):
        Image(np.zeros((4, 4, 4)), np.eye(4))


@pytest.mark.parametrize("suffix", [".mgz", ".mgh"])
def test_mgh_keeps_data_and_oblique_affine(tmp_path, volume, affine, suffix):
    path = tmp_path / f"brain{suffix}"
    nib.save(nib.MGHImage(volume, affine), str(path))
    image = read_image(path)
    assert image.array.shape == (16, 20, 12, 1) and image.array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(image.array[..., 0], volume)
    np.testing.assert_allclose(image.affine, affine, atol=1e-5)


@pytest.mark.parametrize("given", [".hdr", ".img"])
def test_analyze_pair_reads_from_either_file(tmp_path, volume, given):
    # plain Analyze 7.5 keeps only the voxel size; nibabel centres the volume and flips x
    nib.save(nib.AnalyzeImage(volume, np.diag([1.5, 0.8, 2.0, 1.0])), str(tmp_path / "old.img"))
    assert (tmp_path / "old.hdr").is_file()
    image = read_image(tmp_path / f"old{given}")
    np.testing.assert_array_equal(image.array[..., 0], volume)
    np.testing.assert_array_equal(image.affine, nib.load(tmp_path / "old.hdr").affine)
    np.testing.assert_allclose(image.spacing, [1.5, 0.8, 2.0])


def test_mgz_label_is_int32(tmp_path, affine):
    data = np.random.default_rng(4).integers(0, 40, size=(6, 7, 8)).astype(np.int32)
    nib.save(nib.MGHImage(data, affine), str(tmp_path / "aseg.mgz"))
    image = read_image(tmp_path / "aseg.mgz", kind="label")
    assert image.array.dtype == np.int32
    np.testing.assert_array_equal(image.array[..., 0], data)


def test_zero_byte_nifti_is_called_empty(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.touch()
    with pytest.raises(ImageError, match=r"empty\.nii\.gz: empty file \(0 bytes\)$"):
        read_image(path)
