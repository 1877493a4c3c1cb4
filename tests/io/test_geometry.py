"""Tests for niftykit.io.geometry: reorientation, resampling, padding and their exact inverse."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from niftykit.io.geometry import Geometry, apply_geometry, invert_geometry, orientation_codes, plan_geometry
from niftykit.io.image import read_image

SPACING = (0.8, 1.0, 2.5)
SHAPE = (9, 8, 6)


def _rotation(axis: int, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def _affine(kind: str) -> np.ndarray:
    """RAS, LPS, or oblique: voxel axes near (P, S, R), rotated 20 degrees about z and x."""
    direction = {
        "RAS": np.eye(3),
        "LPS": np.diag([-1.0, -1.0, 1.0]),
        "oblique": _rotation(2, 20.0) @ _rotation(0, 20.0) @ np.array([[0, 0, 1], [-1, 0, 0], [0, 1, 0.0]]),
    }[kind]
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(SPACING)
    affine[:3, 3] = [-10.5, 7.25, 3.0]
    return affine


AFFINES = ["RAS", "LPS", "oblique"]
AXCODES = [("R", "A", "S"), ("A", "R", "S"), ("L", "P", "I")]


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(1).normal(size=SHAPE + (2,)).astype(np.float32)


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(2).choice(np.array([0, 3, 7], dtype=np.int32), size=SHAPE + (1,))


def _centre(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    return affine[:3, :3] @ ((np.asarray(shape[:3]) - 1) / 2.0) + affine[:3, 3]


def _reoriented_spacing(kind: str, axcodes: tuple[str, str, str]) -> np.ndarray:
    plain = plan_geometry(SHAPE, _affine(kind), axcodes=axcodes)
    return np.linalg.norm(plain.resampled_affine[:3, :3], axis=0)


@pytest.mark.parametrize("kind", AFFINES)
@pytest.mark.parametrize("axcodes", AXCODES)
def test_reorientation_matches_nibabel(kind: str, axcodes: tuple[str, str, str], image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine(kind), axcodes=axcodes)
    expected = nib.Nifti1Image(image[..., 0], _affine(kind)).as_reoriented(geometry.ornt)
    assert not geometry.resamples
    assert np.array_equal(geometry.resampled_affine, expected.affine)
    assert np.array_equal(geometry.affine, expected.affine)
    result = apply_geometry(image, geometry, order=3)
    assert np.array_equal(result[..., 0], np.asarray(expected.dataobj))
    assert result.flags.c_contiguous and result.dtype == np.float32
    assert orientation_codes(geometry.affine) == axcodes


@pytest.mark.parametrize("kind", AFFINES)
@pytest.mark.parametrize("axcodes", [None] + AXCODES)
def test_reorient_and_pad_invert_exactly(kind: str, axcodes, image: np.ndarray, labels: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine(kind), axcodes=axcodes, padding=(2, 0, 1), pad_to=(0, 13, 0))
    for array, order in ((image, 3), (labels, 0)):
        forward = apply_geometry(array, geometry, order=order)
        assert forward.shape == geometry.shape + array.shape[3:]
        back = invert_geometry(forward, geometry, order=order)
        assert back.dtype == array.dtype and back.flags.c_contiguous
        assert np.array_equal(back, array)


def test_no_axcodes_is_identity(image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("oblique"))
    assert geometry.shape == SHAPE and not geometry.resamples
    assert np.array_equal(geometry.affine, _affine("oblique"))
    result = apply_geometry(image, geometry, order=1)
    assert np.array_equal(result, image) and not np.shares_memory(result, image)
    assert plan_geometry((5, 4), np.eye(4)).shape == (5, 4, 1)


@pytest.mark.parametrize("kind", AFFINES)
@pytest.mark.parametrize("pixdim", [(1.0, 1.0, 1.0), (1.3, 0.7, 2.0), 0.45])
def test_resampling_keeps_centre_and_directions(kind: str, pixdim) -> None:
    geometry = plan_geometry(SHAPE, _affine(kind), axcodes=("R", "A", "S"), pixdim=pixdim)
    reoriented = plan_geometry(SHAPE, _affine(kind), axcodes=("R", "A", "S")).resampled_affine
    assert geometry.resamples
    np.testing.assert_allclose(
        _centre(geometry.resampled_shape, geometry.resampled_affine), _centre(SHAPE, _affine(kind)), atol=1e-6
    )
    spacing = np.linalg.norm(geometry.resampled_affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, np.broadcast_to(pixdim, (3,)), rtol=1e-12)
    directions = reoriented[:3, :3] / np.linalg.norm(reoriented[:3, :3], axis=0)
    np.testing.assert_allclose(geometry.resampled_affine[:3, :3] / spacing, directions, atol=1e-12)


def test_resampled_shape_rounds_extent() -> None:
    affine = np.diag([2.5, 2.5, 2.5, 1.0])
    assert plan_geometry((10, 10, 10), affine, pixdim=(1.0, 3.0, 100.0)).resampled_shape == (25, 8, 1)
    assert plan_geometry((10, 10, 10), affine, pixdim=(1.25, 2.5 + 1e-7, 2.5)).resampled_shape == (20, 10, 10)


def test_pixdim_equal_to_spacing_does_not_resample(image: np.ndarray) -> None:
    spacing = _reoriented_spacing("oblique", ("R", "A", "S"))
    geometry = plan_geometry(SHAPE, _affine("oblique"), axcodes=("R", "A", "S"), pixdim=spacing + 5e-7, padding=1)
    assert not geometry.resamples
    assert np.array_equal(invert_geometry(apply_geometry(image, geometry, order=3), geometry, order=3), image)


@pytest.mark.parametrize("kind", AFFINES)
def test_linear_interpolation_agrees_with_affine(kind: str) -> None:
    """An intensity linear in mm must come back as the same linear function on the new grid."""
    gradient, original = np.array([0.3, -0.2, 0.5]), _affine(kind)
    voxels = np.indices(SHAPE).reshape(3, -1)
    world = original[:3, :3] @ voxels + original[:3, 3:]
    image = (gradient @ world).reshape(SHAPE + (1,)).astype(np.float32)
    geometry = plan_geometry(SHAPE, original, axcodes=("R", "A", "S"), pixdim=(0.6, 1.3, 1.1), padding=1)
    result = apply_geometry(image, geometry, order=1)[..., 0]
    new_voxels = np.indices(geometry.shape).reshape(3, -1)
    new_world = geometry.affine[:3, :3] @ new_voxels + geometry.affine[:3, 3:]
    source = np.linalg.solve(original, np.vstack([new_world, np.ones(new_world.shape[1])]))[:3]
    inside = np.all((source >= 0) & (source <= np.array(SHAPE)[:, None] - 1), axis=0)
    assert inside.sum() > 100
    np.testing.assert_allclose(result.reshape(-1)[inside], (gradient @ new_world)[inside], atol=1e-4)


@pytest.mark.parametrize("kind", AFFINES)
@pytest.mark.parametrize("factor", [2, 3])
def test_integer_upsampling_of_labels_inverts_exactly(kind: str, factor: int, labels: np.ndarray) -> None:
    pixdim = _reoriented_spacing(kind, ("R", "A", "S")) / factor
    geometry = plan_geometry(SHAPE, _affine(kind), axcodes=("R", "A", "S"), pixdim=pixdim, padding=(1, 2, 0))
    forward = apply_geometry(labels, geometry, order=0)
    assert forward.dtype == np.int32
    assert sorted(geometry.resampled_shape) == sorted(np.multiply(SHAPE, factor).tolist())
    # each resampled voxel holds the label of the original voxel its centre lies in
    inner = forward[tuple(slice(b, b + n) for b, n in zip(geometry.pad_before, geometry.resampled_shape))]
    voxels = np.indices(geometry.resampled_shape).reshape(3, -1)
    source = np.linalg.solve(_affine(kind), geometry.resampled_affine)
    index = np.rint(source[:3, :3] @ voxels + source[:3, 3:]).astype(int)
    assert np.array_equal(inner.reshape(-1), labels[index[0], index[1], index[2], 0])
    assert np.array_equal(invert_geometry(forward, geometry, order=0), labels)


def test_label_values_come_from_the_input(labels: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("oblique"), axcodes=("A", "R", "S"), pixdim=(1.7, 0.9, 1.3))
    forward = apply_geometry(labels, geometry, order=0)
    back = invert_geometry(forward, geometry, order=0)
    for array in (forward, back):
        assert array.dtype == np.int32
        assert set(np.unique(array)) <= {0, 3, 7}
    assert back.shape == labels.shape
    assert np.mean(back == labels) > 0.5


def test_cubic_resampling_is_interpolating(image: np.ndarray) -> None:
    """With the spline prefilter, order 3 reproduces the samples where the grids coincide."""
    affine = np.diag(SPACING + (1.0,))
    geometry = plan_geometry(SHAPE, affine, pixdim=np.divide(SPACING, 3))
    result = apply_geometry(image, geometry, order=3)
    np.testing.assert_allclose(result[1::3, 1::3, 1::3], image, atol=1e-5)


def test_probabilities_come_back_with_linear_interpolation() -> None:
    """Order 1 there and back reproduces probabilities linear in space (away from the border)."""
    ramp = np.indices(SHAPE).sum(axis=0) / float(sum(SHAPE))
    probabilities = np.stack([0.1 + 0.5 * ramp, 0.6 - 0.3 * ramp, 0.3 - 0.2 * ramp], axis=-1).astype(np.float32)
    affine = _affine("LPS")
    geometry = plan_geometry(SHAPE, affine, axcodes=("R", "A", "S"), pixdim=np.divide(SPACING, 2), pad_to=24)
    back = invert_geometry(apply_geometry(probabilities, geometry, order=1), geometry, order=1)
    assert back.shape == probabilities.shape and back.dtype == np.float32
    np.testing.assert_allclose(back[1:-1, 1:-1, 1:-1], probabilities[1:-1, 1:-1, 1:-1], atol=1e-6)
    np.testing.assert_allclose(back.sum(axis=-1), 1.0, atol=1e-5)


def test_float64_dtype_is_kept(image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), pixdim=1.1)
    assert apply_geometry(image.astype(np.float64), geometry, order=1).dtype == np.float64


def test_padding_and_affine(image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), padding=(1, 2, 0), pad_to=(0, 0, 9))
    assert geometry.pad_before == (1, 2, 1) and geometry.pad_after == (1, 2, 2)
    assert geometry.shape == (11, 12, 9)
    np.testing.assert_allclose(geometry.affine @ [1, 2, 1, 1], _affine("RAS")[:, 3])
    padded = apply_geometry(image, geometry, order=1, pad_mode="constant")
    assert np.all(padded[0] == 0) and np.all(padded[:, :, -2:] == 0)
    assert np.array_equal(padded[1:-1, 2:-2, 1:-2], image)
    assert np.array_equal(invert_geometry(padded, geometry, order=1), image)


def test_pad_to_reaches_at_least_the_size() -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), padding=2, pad_to=(16, 4, 7))
    assert geometry.shape == (16, 12, 10)


def test_minimum_padding_mode(image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), padding=(2, 0, 0))
    padded = apply_geometry(image, geometry, order=0)
    assert np.array_equal(padded[0], image.min(axis=0))


def test_two_dimensional_image_keeps_its_slice() -> None:
    affine = np.array([[-0.5, 0, 0, 0], [0, 0, 3.0, 0], [0, -0.7, 0, 0], [0, 0, 0, 1.0]])  # axes L, I, A: coronal
    image = np.random.default_rng(4).normal(size=(12, 10, 1, 1)).astype(np.float32)
    plain = plan_geometry(image.shape, affine, axcodes=("R", "A", "S"), padding=(1, 1, 1))
    assert plain.shape == (14, 12, 1)
    assert orientation_codes(plain.affine) == ("R", "S", "A")
    assert np.array_equal(apply_geometry(image, plain, order=1)[1:-1, 1:-1, 0, 0], image[::-1, ::-1, 0, 0])
    assert np.array_equal(invert_geometry(apply_geometry(image, plain, order=1), plain, order=1), image)
    resampled = plan_geometry(image.shape, affine, axcodes=("R", "A", "S"), pixdim=(0.25, 0.35))
    assert resampled.resampled_shape == (24, 20, 1)
    np.testing.assert_allclose(np.linalg.norm(resampled.affine[:3, :3], axis=0), [0.25, 0.35, 3.0])


def test_round_trip_through_nifti_files(write_nifti: Callable[..., Path], affine: np.ndarray) -> None:
    data = np.random.default_rng(5).integers(0, 4, size=(10, 12, 7)).astype(np.int16)
    image = read_image(write_nifti("label.nii.gz", data), kind="label")
    spacing = _spacing_after(image.spatial_shape, image.affine, ("A", "R", "S"))
    geometry = plan_geometry(image.spatial_shape, image.affine, axcodes=("A", "R", "S"), pixdim=spacing / 2, padding=3)
    back = invert_geometry(apply_geometry(image.array, geometry, order=0), geometry, order=0)
    saved = nib.Nifti1Image(back[..., 0], geometry.original_affine)
    assert np.array_equal(np.asarray(saved.dataobj), data) and np.array_equal(saved.affine, nib.load(image.path).affine)


def _spacing_after(shape: tuple[int, int, int], affine: np.ndarray, axcodes: tuple[str, str, str]) -> np.ndarray:
    return np.linalg.norm(plan_geometry(shape, affine, axcodes=axcodes).resampled_affine[:3, :3], axis=0)


def test_geometry_is_read_only() -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"))
    assert isinstance(geometry, Geometry)
    with pytest.raises(ValueError):
        geometry.resampled_affine[0, 0] = 2.0


@pytest.mark.parametrize("axcodes", [("R", "L", "S"), ("R", "A"), ("X", "A", "S"), ("RA", "P", "S")])
def test_bad_axcodes(axcodes) -> None:
    with pytest.raises(ValueError, match="one of R/L, one of A/P and one of S/I"):
        plan_geometry(SHAPE, _affine("RAS"), axcodes=axcodes)


@pytest.mark.parametrize("pixdim", [0.0, -1.0, (1.0, 1.0), (1.0, np.nan, 1.0)])
def test_bad_pixdim(pixdim) -> None:
    with pytest.raises(ValueError, match="pixdim"):
        plan_geometry(SHAPE, _affine("RAS"), pixdim=pixdim)


def test_bad_padding() -> None:
    with pytest.raises(ValueError, match="volume_padding_size"):
        plan_geometry(SHAPE, _affine("RAS"), padding=(-1, 0, 0))
    with pytest.raises(ValueError, match="volume_padding_to_size"):
        plan_geometry(SHAPE, _affine("RAS"), pad_to=(1.5, 0, 0))


def test_degenerate_affine() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        plan_geometry(SHAPE, np.diag([1.0, 0.0, 1.0, 1.0]), axcodes=("R", "A", "S"))
    with pytest.raises(ValueError, match="degenerate"):
        plan_geometry(SHAPE, np.diag([1.0, 0.0, 1.0, 1.0]), pixdim=1.0)


@pytest.mark.parametrize("order", [-1, 4, 1.5, True])
def test_bad_order(order, image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"))
    with pytest.raises(ValueError, match="interp_order must be 0, 1, 2 or 3"):
        apply_geometry(image, geometry, order=order)


def test_labels_need_order_zero(labels: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), pixdim=1.0)
    with pytest.raises(ValueError, match="interp_order 0"):
        apply_geometry(labels, geometry, order=1)
    with pytest.raises(ValueError, match="interp_order 0"):
        invert_geometry(np.zeros(geometry.shape + (1,), np.int32), geometry, order=1)


def test_wrong_shape_and_pad_mode(image: np.ndarray) -> None:
    geometry = plan_geometry(SHAPE, _affine("RAS"), padding=1)
    with pytest.raises(ValueError, match=r"\(x, y, z\) == \(9, 8, 6\)"):
        apply_geometry(image[:-1], geometry, order=1)
    with pytest.raises(ValueError, match="volume_padding_mode"):
        apply_geometry(image, geometry, order=1, pad_mode="empty")
    with pytest.raises(ValueError, match=r"\(x, y, z\) == \(11, 10, 8\)"):
        invert_geometry(image, geometry, order=1)
