"""Tests for niftykit/io/augment.py and the modules it composes: deform.py, warp.py and
intensity_augment.py (small synthetic volumes only)."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import ndimage as ndi

from niftykit.errors import ConfigError
from niftykit.io.augment import Augmenter
from niftykit.io.deform import SpatialTransform, antialias_sigma, bspline_basis
from niftykit.io.warp import Workspace, blur, crop, warp

ALL_SPATIAL = dict(flip_axes=(0, 1, 2), rotation=(-20, 20), scaling=(-15, 15), elastic=True,
                   num_ctrl_points=3, deformation_sigma=4.0, proportion_to_deform=1.0)
ALL_INTENSITY = dict(bias_field_range=(-0.3, 0.3), gamma_range=(0.7, 1.5), noise_std=(0.05, 0.1))


def _labels(shape: tuple[int, ...] = (24, 22, 20)) -> np.ndarray:
    """An int32 ``(x, y, z, 1)`` label map of blocks with values {0, 2, 3, 5, 7}."""
    x, y, z = np.indices(shape)
    values = np.array([0, 2, 3, 5, 7], dtype=np.int32)
    return values[(x // 5 + 2 * (y // 6) + 3 * (z // 7)) % 5][..., None]


def _blob(shape: tuple[int, ...], centre: tuple[float, ...], width: float = 2.5) -> np.ndarray:
    """A smooth float32 Gaussian blob ``(x, y, z, 1)``."""
    grids = np.indices(shape, dtype=np.float64)
    dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    return np.exp(-dist2 / (2 * width**2)).astype(np.float32)[..., None]


def _centroid(volume: np.ndarray) -> np.ndarray:
    return np.array(ndi.center_of_mass(volume[..., 0]))


def _augment(volumes: dict, orders: dict, seed: int = 0, **kwargs) -> dict:
    return Augmenter(rng=np.random.default_rng(seed), **kwargs)(volumes, orders)


@pytest.mark.parametrize("kwargs", [
    dict(rotation=(-30, 30)),
    dict(scaling=(-20, 20)),
    dict(scaling=(-20, -20), antialiasing=True),
    dict(elastic=True, proportion_to_deform=1.0, deformation_sigma=5.0),
    dict(flip_axes=(0, 1, 2)),
    ALL_SPATIAL,
], ids=["rotation", "scaling", "zoom-out", "elastic", "flips", "combined"])
def test_image_equal_to_label_stays_equal(kwargs: dict) -> None:
    label = _labels()
    changed = []
    for seed in range(3):
        out = _augment({"image": label.astype(np.float32), "label": label},
                       {"image": 0, "label": 0}, seed=seed, **kwargs)
        np.testing.assert_array_equal(out["image"], out["label"].astype(np.float32))
        changed.append(not np.array_equal(out["label"], label))
    assert any(changed)


def test_flips_are_exact_and_random() -> None:
    volume = np.random.default_rng(1).normal(size=(6, 7, 8, 2)).astype(np.float32)
    augmenter = Augmenter(rng=np.random.default_rng(0), flip_axes=(0, 2))
    seen = set()
    for _ in range(24):
        out = augmenter({"v": volume}, {"v": 1})["v"]
        matches = [axes for axes in [(), (0,), (2,), (0, 2)]
                   if np.array_equal(out, np.flip(volume, axes) if axes else volume)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {(), (0,), (2,), (0, 2)}


def test_flip_comes_before_the_warp() -> None:
    volume = np.random.default_rng(1).normal(size=(9, 9, 11, 1)).astype(np.float32)
    flipped_seeds = [seed for seed in range(8) if np.random.default_rng(seed).random() < 0.5]
    assert 0 < len(flipped_seeds) < 8
    for seed in range(8):
        out = _augment({"v": volume}, {"v": 1}, seed=seed, flip_axes=(0,), rotation_z=(90, 90))["v"]
        source = np.flip(volume, 0) if seed in flipped_seeds else volume
        np.testing.assert_allclose(out[..., 0], np.rot90(source[..., 0], 1, axes=(0, 1)), atol=1e-5)


@pytest.mark.parametrize("axis, plane, sign", [("z", (0, 1), 1), ("x", (1, 2), 1), ("y", (0, 2), -1)])
def test_fixed_rotation_matches_scipy_rotate(axis: str, plane: tuple[int, int], sign: int) -> None:
    volume = _blob((25, 25, 25), (17.0, 18.0, 7.0), width=3.0)
    out = _augment({"v": volume}, {"v": 1}, **{f"rotation_{axis}": (25.0, 25.0)})["v"]
    expected = ndi.rotate(volume[..., 0], sign * 25.0, axes=plane, reshape=False, order=1,
                          mode="nearest")
    np.testing.assert_allclose(out[..., 0], expected, atol=0.02)
    assert np.abs(out - volume).max() > 0.3


def test_rotation_follows_the_right_hand_rule() -> None:
    volume = np.zeros((21, 21, 21, 1), np.float32)
    volume[16, 10, 10] = 1.0
    out = _augment({"v": volume}, {"v": 0}, rotation_z=(90, 90))["v"]
    assert np.argwhere(out[..., 0] == 1.0).tolist() == [[10, 16, 10]]


def test_fixed_scaling_zooms_about_the_centre() -> None:
    shape, centre = (31, 31, 31), np.array([15.0, 15.0, 15.0])
    volume = _blob(shape, (19.0, 12.0, 15.0), width=2.0)
    out = _augment({"v": volume}, {"v": 1}, scaling=(20.0, 20.0))["v"]
    expected = centre + 1.2 * (np.array([19.0, 12.0, 15.0]) - centre)
    np.testing.assert_allclose(_centroid(out), expected, atol=0.1)
    assert out.sum() == pytest.approx(volume.sum() * 1.2**3, rel=0.02)


def test_zoom_out_blurs_with_the_cardoso_sigma() -> None:
    volume = np.random.default_rng(2).normal(size=(20, 20, 20, 1)).astype(np.float32)
    out = _augment({"v": volume}, {"v": 1}, scaling=(-40.0, -40.0))["v"][..., 0]
    sigma = antialias_sigma(np.full(3, 0.6))
    assert sigma == pytest.approx(np.full(3, np.sqrt(1 / 0.36 - 1) / 2.3548), rel=1e-3)
    blurred = ndi.gaussian_filter(volume[..., 0], sigma, mode="nearest")
    centre = 9.5 - 9.5 / 0.6
    expected = ndi.affine_transform(blurred, np.full(3, 1 / 0.6), offset=centre, order=1,
                                    mode="nearest")
    np.testing.assert_allclose(out, expected, atol=1e-4)
    plain = _augment({"v": volume}, {"v": 1}, scaling=(-40.0, -40.0), antialiasing=False)["v"]
    assert np.abs(plain[..., 0] - expected).max() > 0.1


@pytest.mark.parametrize("shape, sigma", [((9, 10, 11), (0.3, 1.2, 0.7)), ((2, 30, 5), (2.5, 0.0, 1.0)),
                                          ((30, 31), (0.8, 0.2))])
def test_blur_matches_scipy_gaussian_filter(shape: tuple[int, ...], sigma: tuple[float, ...]) -> None:
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = ndi.gaussian_filter(volume, sigma, mode="nearest")
    np.testing.assert_allclose(blur(volume, sigma), expected, atol=1e-6)


def test_rotation_and_scaling_are_one_resampling() -> None:
    volume = np.random.default_rng(3).normal(size=(18, 18, 18, 1)).astype(np.float32)
    out = _augment({"v": volume}, {"v": 1}, rotation_z=(30, 30), scaling=(25, 25))["v"]
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    matrix, centre = rotation.T / 1.25, np.full(3, 8.5)
    expected = ndi.affine_transform(volume[..., 0], matrix, offset=centre - matrix @ centre,
                                    order=1, mode="nearest")
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-4)


def test_anisotropic_scaling_comes_before_rotation() -> None:
    volume = np.random.default_rng(3).normal(size=(18, 18, 18, 1)).astype(np.float32)
    out = _augment({"v": volume}, {"v": 1}, seed=5, rotation_z=(40, 40), scaling=(-30, 30))["v"]
    draws = np.random.default_rng(5)  # the documented draw order: the angle, then three zooms
    draws.uniform(40, 40)
    zoom = (100.0 + draws.uniform(-30, 30, size=3)) / 100.0
    angle = np.deg2rad(40.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    matrix, centre = np.diag(1.0 / zoom) @ rotation.T, np.full(3, 8.5)
    blurred = ndi.gaussian_filter(volume[..., 0], antialias_sigma(zoom), mode="nearest")
    expected = ndi.affine_transform(blurred, matrix, offset=centre - matrix @ centre, order=1,
                                    mode="nearest")
    assert np.ptp(zoom) > 0.1
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-4)


def test_bspline_field_matches_simpleitk() -> None:
    # Displacements printed by SimpleITK 2.5.7: BSplineTransformInitializer(Image((20, 17, 13)),
    # [4, 4, 4]) with parameters default_rng(0).normal(0, 3, 1029), at three voxels.
    params = np.random.default_rng(0).normal(0, 3, size=3 * 7**3)
    coefficients = params.reshape(3, 7, 7, 7).transpose(0, 3, 2, 1)
    bases = [bspline_basis(n, 4) for n in (20, 17, 13)]
    field = np.einsum("ip,jq,kr,apqr->ijka", *bases, coefficients)
    np.testing.assert_allclose(field[0, 0, 0], [-0.09038166, 0.43695814, -1.86401469], atol=1e-6)
    np.testing.assert_allclose(field[19, 16, 12], [-2.24667035, -0.27977462, -2.13615619], atol=1e-6)
    np.testing.assert_allclose(field[5, 7, 3], [1.4796947, 1.44858497, -0.10740377], atol=1e-6)


def test_constant_bspline_coefficients_translate() -> None:
    volume = np.random.default_rng(4).normal(size=(16, 16, 16, 1)).astype(np.float32)
    coefficients = np.broadcast_to(np.array([2.0, -1.0, 3.0])[:, None, None, None], (3, 7, 7, 7))
    out = np.empty_like(volume)
    warp([(volume, 0, out)], SpatialTransform(np.eye(3), np.array(coefficients)))
    np.testing.assert_array_equal(out[:12, 1:, :10], volume[2:14, :15, 3:13])


def test_elastic_respects_sigma_and_proportion() -> None:
    label = _labels()
    still = _augment({"l": label}, {"l": 0}, elastic=True, deformation_sigma=0.0,
                     proportion_to_deform=1.0)["l"]
    np.testing.assert_array_equal(still, label)
    augmenter = Augmenter(rng=np.random.default_rng(5), elastic=True, proportion_to_deform=0.5,
                          deformation_sigma=3.0)
    changed = [not np.array_equal(augmenter({"l": label}, {"l": 0})["l"], label) for _ in range(40)]
    assert 8 <= sum(changed) <= 32
    assert not Augmenter(rng=np.random.default_rng(0), elastic=True, proportion_to_deform=0).active


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_labels_keep_dtype_and_values(dtype: type) -> None:
    label = _labels().astype(dtype)
    image = _blob(label.shape[:3], (10, 10, 10))
    out = _augment({"image": image, "label": label}, {"image": 3, "label": 0},
                   **ALL_SPATIAL, **ALL_INTENSITY)
    assert out["label"].dtype == dtype and out["image"].dtype == np.float32
    assert out["label"].shape == label.shape and out["image"].shape == image.shape
    assert set(np.unique(out["label"])) <= set(np.unique(label))
    assert len(np.unique(out["label"])) >= 4


def test_every_dtype_and_order_comes_back_as_it_went_in() -> None:
    label = _labels((12, 14, 10))
    volumes = {"f64": np.random.default_rng(0).normal(size=(12, 14, 10, 2)),
               "f16": label.astype(np.float16), "mask": label > 2, "cubic": label.astype(np.float32)}
    orders = {"f64": 3, "f16": 1, "mask": 0, "cubic": 3}
    out = _augment(volumes, orders, **ALL_SPATIAL, **ALL_INTENSITY)
    for name, volume in volumes.items():
        assert out[name].dtype == volume.dtype and out[name].shape == volume.shape, name
        assert out[name].flags.c_contiguous and np.isfinite(out[name].astype(np.float64)).all()
    assert out["mask"].any() and not out["mask"].all()


def test_intensity_transforms_leave_labels_alone() -> None:
    label = _labels()
    image = label.astype(np.float32) + 1.0
    out = _augment({"image": image, "label": label, "float_label": label.astype(np.float32)},
                   {"image": 1, "label": 0, "float_label": 0}, **ALL_INTENSITY)
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["float_label"], label.astype(np.float32))
    assert np.abs(out["image"] - image).max() > 0.1


def test_gamma_follows_the_formula() -> None:
    image = np.random.default_rng(6).uniform(-3, 5, size=(10, 11, 12, 2)).astype(np.float32)
    out = _augment({"image": image}, {"image": 1}, gamma_range=(1.7, 1.7))["image"]
    for c in range(2):
        x = image[..., c].astype(np.float64)
        lo, hi = x.min(), x.max()
        np.testing.assert_allclose(out[..., c], lo + (hi - lo) * ((x - lo) / (hi - lo)) ** 1.7,
                                   rtol=1e-5, atol=1e-5)


def test_bias_field_is_a_smooth_positive_multiplier() -> None:
    image = np.random.default_rng(7).uniform(1, 2, size=(16, 18, 20, 2)).astype(np.float32)
    out = _augment({"image": image}, {"image": 1}, bias_field_range=(-0.5, 0.5), bf_order=1)["image"]
    ratio = out / image
    np.testing.assert_allclose(ratio[..., 0], ratio[..., 1], rtol=1e-5)
    grids = np.indices(image.shape[:3]).reshape(3, -1).T
    design = np.column_stack([np.ones(len(grids)), grids])
    log_ratio = np.log(ratio[..., 0]).ravel()
    residual = log_ratio - design @ np.linalg.lstsq(design, log_ratio, rcond=None)[0]
    assert np.abs(residual).max() < 1e-4 and np.ptp(log_ratio) > 0.05


def test_noise_std_is_relative_to_the_image_std() -> None:
    image = np.random.default_rng(8).normal(3.0, 2.0, size=(32, 32, 32, 1)).astype(np.float32)
    out = _augment({"image": image}, {"image": 1}, noise_std=(0.1, 0.1))["image"]
    assert np.std(out - image) == pytest.approx(0.1 * np.std(image), rel=0.03)


def test_seed_reproduces_and_calls_differ() -> None:
    label = _labels()
    volumes = {"image": _blob(label.shape[:3], (12, 8, 9)), "label": label}
    orders = {"image": 1, "label": 0}
    first, second = (Augmenter(rng=np.random.default_rng(11), **ALL_SPATIAL, **ALL_INTENSITY)
                     for _ in range(2))
    a, b = first(volumes, orders), second(volumes, orders)
    for name in volumes:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(first(volumes, orders)["image"], a["image"])


def test_active_only_when_something_is_set() -> None:
    assert not Augmenter(rng=np.random.default_rng(0)).active
    assert not Augmenter(rng=np.random.default_rng(0), flip_axes=(-1,)).active
    for kwargs in [dict(flip_axes=(1,)), dict(rotation=(-5, 5)), dict(rotation_y=(-5, 5)),
                   dict(scaling=(-5, 5)), dict(elastic=True), dict(bias_field_range=(-1, 1)),
                   dict(gamma_range=(0.8, 1.2)), dict(noise_std=(0, 0.1))]:
        assert Augmenter(rng=np.random.default_rng(0), **kwargs).active, kwargs


def test_two_d_rotates_about_z_only_and_keeps_its_slice() -> None:
    image = _blob((25, 25, 1), (16.0, 10.0, 0.0), width=3.0)
    out = _augment({"v": image}, {"v": 1}, rotation=(25, 25))["v"]
    expected = ndi.rotate(image[:, :, 0, 0], 25.0, reshape=False, order=1, mode="nearest")
    np.testing.assert_allclose(out[:, :, 0, 0], expected, atol=0.02)
    label = _labels((24, 22, 1))
    for seed in range(3):
        result = _augment({"i": label.astype(np.float32), "l": label}, {"i": 0, "l": 0},
                          seed=seed, **ALL_SPATIAL, **ALL_INTENSITY)
        assert result["l"].shape == label.shape
        np.testing.assert_array_equal(result["i"], result["l"].astype(np.float32))


def test_two_d_is_never_scaled_along_z() -> None:
    image = _blob((31, 31, 1), (19.0, 12.0, 0.0), width=2.0)
    out = _augment({"v": image}, {"v": 1}, scaling=(20.0, 20.0))["v"]
    np.testing.assert_allclose(_centroid(out)[:2], [15 + 1.2 * 4, 15 - 1.2 * 3], atol=0.1)
    assert out.sum() == pytest.approx(image.sum() * 1.2**2, rel=0.02)


def test_negative_order_is_passed_through() -> None:
    weights = np.random.default_rng(9).normal(size=(12, 12, 12, 1)).astype(np.float32)
    out = _augment({"w": weights}, {"w": -1}, **ALL_SPATIAL, **ALL_INTENSITY)["w"]
    np.testing.assert_array_equal(out, weights)
    assert out is not weights


@pytest.mark.parametrize("kwargs, key", [
    (dict(rotation=(10, -10)), "rotation_angle"), (dict(rotation_z=(1, 2, 3)), "rotation_angle_z"),
    (dict(scaling=(-100, 10)), "scaling_percentage"), (dict(flip_axes=(3,)), "random_flipping_axes"),
    (dict(proportion_to_deform=1.5), "proportion_to_deform"), (dict(gamma_range=(0, 1)), "gamma_range"),
    (dict(noise_std=(-0.1, 0.1)), "noise_std"), (dict(deformation_sigma=-1), "deformation_sigma"),
])
def test_bad_settings_name_their_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Augmenter(rng=np.random.default_rng(0), **kwargs)


def test_volumes_must_share_a_grid() -> None:
    augmenter = Augmenter(rng=np.random.default_rng(0), rotation=(-5, 5))
    with pytest.raises(ValueError, match="spatial shape"):
        augmenter({"a": np.zeros((8, 8, 8, 1)), "b": np.zeros((8, 8, 9, 1))}, {"a": 1, "b": 0})
    with pytest.raises(ValueError, match="order"):
        augmenter({"a": np.zeros((8, 8, 8, 1))}, {})


# --- Augmenter.window: the transform evaluated on a window's grid only ---------------------------


def _volumes(shape: tuple[int, ...] = (40, 36, 30), seed: int = 0) -> tuple[dict, dict]:
    """A smooth float32 image, an int32 label and their orders."""
    rng = np.random.default_rng(seed)
    image = ndi.gaussian_filter(rng.normal(size=shape), 2.0).astype(np.float32)[..., None]
    return {"image": image, "label": _labels(shape)}, {"image": 1, "label": 0}


def _edge_crop(volume: np.ndarray, lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    """The reference crop: pad with edge values, then slice."""
    pad = [(max(-a, 0), max(b - n, 0)) for a, b, n in zip(lo, hi, volume.shape)]
    padded = np.pad(volume, pad + [(0, 0)] * (volume.ndim - len(lo)), mode="edge")
    start = [a + p[0] for a, p in zip(lo, pad)]
    return padded[tuple(slice(s, s + b - a) for s, a, b in zip(start, lo, hi))]


@pytest.mark.parametrize("box", [(5, 4, 3, 21, 20, 19), (-6, 30, -2, 10, 44, 12),
                                 (50, 1, 2, 53, 5, 9)], ids=["inside", "across-edges", "outside"])
def test_window_without_a_transform_is_the_exact_crop(box: tuple[int, ...]) -> None:
    volumes, orders = _volumes()
    out = Augmenter(rng=np.random.default_rng(0)).window(volumes, orders, box)
    for name, volume in volumes.items():
        np.testing.assert_array_equal(out[name], _edge_crop(volume, box[:3], box[3:]))
        np.testing.assert_array_equal(crop(volume, box[:3], box[3:]), out[name])
        assert out[name].dtype == volume.dtype and out[name].flags.c_contiguous
    assert out["location"].dtype == np.int32 and out["location"].tolist() == list(box)


def test_window_flips_are_flipped_crops() -> None:
    volumes, orders = _volumes()
    augmenter = Augmenter(rng=np.random.default_rng(3), flip_axes=(0, 1, 2))
    seen = set()
    for _ in range(16):
        out = augmenter.window(volumes, orders, (3, 2, 1, 20, 30, 25))["label"]
        reference = _edge_crop(volumes["label"], (3, 2, 1), (20, 30, 25))
        axes = [a for a in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
                if np.array_equal(out, np.flip(reference, a) if a else reference)]
        assert len(axes) == 1
        seen.add(axes[0])
    assert len(seen) >= 5


@pytest.mark.parametrize("kwargs, order", [
    ({"rotation": (25.0, 25.0)}, 1),
    ({"rotation_z": (-35.0, -35.0), "rotation_x": (10.0, 10.0), "scaling": (-30.0, -30.0)}, 1),
    ({"rotation_y": (20.0, 20.0), "scaling": (15.0, 15.0)}, 3),
], ids=["rotation", "rotation-zoom-out-antialiased", "rotation-zoom-in-cubic"])
def test_window_at_the_volume_centre_is_the_crop_of_the_whole(kwargs: dict, order: int) -> None:
    volumes, orders = _volumes((72, 70, 64))
    orders = {"image": order, "label": 0}
    box = (26, 24, 23, 46, 46, 41)  # centre (35.5, 34.5, 31.5) = the volume's centre
    inside = tuple(slice(a, b) for a, b in zip(box[:3], box[3:]))
    whole = _augment(volumes, orders, **kwargs)
    out = Augmenter(rng=np.random.default_rng(0), **kwargs).window(volumes, orders, box)
    np.testing.assert_allclose(out["image"], whole["image"][inside], atol=1e-4)
    assert np.abs(out["image"] - volumes["image"][inside]).max() > 0.1
    agree = np.mean(out["label"] == whole["label"][inside])
    assert agree > 0.999  # nearest neighbour: float32 maps may round a tie differently


def test_window_rotates_about_its_own_centre() -> None:
    image = _blob((60, 60, 20), (37.0, 40.0, 10.0), width=2.0)
    out = Augmenter(rng=np.random.default_rng(0), rotation_z=(90.0, 90.0)).window(
        {"v": image}, {"v": 1}, (20, 25, 0, 51, 56, 20))["v"]
    # window centre (35, 40, 9.5): the blob at +2 along x from it turns to +2 along y,
    # volume voxel (35, 42, 10), window voxel (15, 17, 10)
    np.testing.assert_allclose(_centroid(out), [15.0, 17.0, 10.0], atol=0.05)


def test_window_elastic_grid_spans_the_window() -> None:
    volumes, _ = _volumes((48, 44, 40))
    image, box = volumes["image"], (10, 6, 9, 34, 36, 29)
    kwargs = {"elastic": True, "proportion_to_deform": 1.0, "deformation_sigma": 3.0,
              "num_ctrl_points": 3}
    out = Augmenter(rng=np.random.default_rng(4), **kwargs).window({"v": image}, {"v": 1}, box)["v"]
    draws = np.random.default_rng(4)
    draws.random()  # the documented order: the "deform?" draw, then the coefficients
    coefficients = draws.normal(0.0, 3.0, size=(3, 6, 6, 6))
    bases = [bspline_basis(b - a, 3) for a, b in zip(box[:3], box[3:])]
    field = np.einsum("ip,jq,kr,apqr->aijk", *bases, coefficients)
    grid = np.indices(field.shape[1:]) + np.array(box[:3])[:, None, None, None]
    expected = ndi.map_coordinates(image[..., 0], grid + field, order=1, mode="nearest")
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-4)
    assert np.abs(field).max() > 2.0


def test_window_keeps_image_and_label_aligned() -> None:
    label = _labels((40, 36, 30))
    volumes = {"image": label.astype(np.float32), "label": label}
    augmenter = Augmenter(rng=np.random.default_rng(5), **ALL_SPATIAL)
    changed = []
    for box in [(5, 5, 5, 29, 31, 25), (-8, 20, -3, 16, 44, 21), (0, 0, 0, 40, 36, 30)]:
        out = augmenter.window(volumes, {"image": 0, "label": 0}, box)
        np.testing.assert_array_equal(out["image"], out["label"].astype(np.float32))
        assert set(np.unique(out["label"])) <= set(np.unique(label))
        changed.append(not np.array_equal(out["label"], _edge_crop(label, box[:3], box[3:])))
    assert all(changed)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.bool_])
def test_window_keeps_dtypes_and_label_values(dtype: type) -> None:
    volumes, _ = _volumes((30, 28, 26))
    label = volumes["label"].astype(dtype)
    volumes = {"image": volumes["image"], "f64": volumes["image"].astype(np.float64),
               "f16": volumes["image"].astype(np.float16), "label": label}
    orders = {"image": 3, "f64": 1, "f16": 1, "label": 0}
    out = _augment_window(volumes, orders, (4, -3, 2, 24, 17, 22), **ALL_SPATIAL, **ALL_INTENSITY)
    for name, volume in volumes.items():
        assert out[name].dtype == volume.dtype and out[name].shape == (20, 20, 20, 1), name
        assert np.isfinite(out[name].astype(np.float64)).all(), name
    assert set(np.unique(out["label"])) <= set(np.unique(label))
    assert len(np.unique(out["label"])) >= 2


def test_window_reads_big_endian_volumes_like_native_ones() -> None:
    volumes, orders = _volumes((30, 28, 26))
    swapped = {"image": volumes["image"].astype(">f4"), "label": volumes["label"].astype(">i2")}
    box = (3, -2, 4, 23, 18, 24)
    native = _augment_window(volumes, orders, box, **ALL_SPATIAL)
    big = _augment_window(swapped, orders, box, **ALL_SPATIAL)
    assert big["image"].dtype == np.dtype(">f4") and big["label"].dtype == np.dtype(">i2")
    np.testing.assert_allclose(big["image"], native["image"], atol=1e-6)
    np.testing.assert_array_equal(big["label"], native["label"])


def _augment_window(volumes: dict, orders: dict, box: tuple[int, ...], seed: int = 0,
                    **kwargs) -> dict:
    return Augmenter(rng=np.random.default_rng(seed), **kwargs).window(volumes, orders, box)


def test_window_is_seeded_and_every_call_draws_anew() -> None:
    volumes, orders = _volumes()
    box = (2, 3, 4, 26, 27, 28)
    first, second = (Augmenter(rng=np.random.default_rng(21), **ALL_SPATIAL, **ALL_INTENSITY)
                     for _ in range(2))
    a, b = first.window(volumes, orders, box), second.window(volumes, orders, box)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    again = first.window(volumes, orders, box)
    assert not np.array_equal(again["image"], a["image"])
    assert not np.array_equal(again["label"], a["label"])


def test_window_intensity_uses_the_window_grid() -> None:
    image = np.random.default_rng(7).uniform(1, 2, size=(40, 40, 40, 1)).astype(np.float32)
    out = _augment_window({"v": image}, {"v": 1}, (30, 5, 12, 46, 21, 28),
                          bias_field_range=(-0.5, 0.5), bf_order=1)["v"]
    ratio = out / _edge_crop(image, (30, 5, 12), (46, 21, 28))
    log_ratio = np.log(ratio[..., 0]).ravel()
    design = np.column_stack([np.ones(16**3), np.indices((16, 16, 16)).reshape(3, -1).T])
    residual = log_ratio - design @ np.linalg.lstsq(design, log_ratio, rcond=None)[0]
    assert np.abs(residual).max() < 1e-4 and np.ptp(log_ratio) > 0.05


def test_two_d_window_rotates_about_z_and_keeps_its_slice() -> None:
    shape = (40, 36, 6)
    image = _blob(shape[:2] + (1,), (26.0, 15.0, 0.0), width=3.0)
    image = image * (1.0 + np.arange(6, dtype=np.float32))[None, None, :, None]  # slice k: (k+1)x
    box = (8, 6, 4, 32, 30, 5)
    out = _augment_window({"v": image}, {"v": 1}, box, rotation=(25, 25), scaling=(20, 20))["v"]
    centre, theta = np.array([19.5, 17.5]), np.deg2rad(25.0)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = rotation.T / 1.2
    expected = ndi.affine_transform(image[:, :, 4, 0], matrix, offset=centre - matrix @ centre,
                                    order=1, mode="nearest")[8:32, 6:30]
    assert out.shape == (24, 24, 1, 1)
    np.testing.assert_allclose(out[:, :, 0, 0], expected, atol=1e-4)
    label = _labels((30, 28, 1))
    for seed in range(3):
        result = _augment_window({"i": label.astype(np.float32), "l": label}, {"i": 0, "l": 0},
                                 (-4, 3, 0, 20, 27, 1), seed=seed, **ALL_SPATIAL)
        np.testing.assert_array_equal(result["i"], result["l"].astype(np.float32))


def test_window_negative_order_is_cropped_untouched() -> None:
    weights = np.random.default_rng(9).normal(size=(20, 20, 20, 2)).astype(np.float32)
    out = _augment_window({"w": weights}, {"w": -1}, (-2, 3, 4, 10, 15, 25),
                          **ALL_SPATIAL, **ALL_INTENSITY)["w"]
    np.testing.assert_array_equal(out, _edge_crop(weights, (-2, 3, 4), (10, 15, 25)))


@pytest.mark.parametrize("location", [(0, 0, 0, 4, 4), (0, 0, 5, 4, 4, 5), (0.5, 0, 0, 4, 4, 4)])
def test_window_box_must_be_six_increasing_integers(location: tuple) -> None:
    augmenter = Augmenter(rng=np.random.default_rng(0), rotation=(-5, 5))
    with pytest.raises(ValueError, match="location"):
        augmenter.window({"a": np.zeros((8, 8, 8, 1))}, {"a": 1}, location)


# --- warp.py: resampling pieces ------------------------------------------------------------------


def test_warp_on_two_threads_equals_one() -> None:
    volumes, _ = _volumes((84, 84, 84))
    transform = SpatialTransform(np.linalg.inv(np.diag([1.1, 0.9, 1.0])) @ _rotation(20.0),
                                 np.random.default_rng(0).normal(0, 3, size=(3, 7, 7, 7)))
    results = []
    for threads in (1, 2):
        image, label = np.empty_like(volumes["image"]), np.empty_like(volumes["label"])
        warp([(volumes["image"], 1, image), (volumes["label"], 0, label)], transform, threads,
             sigma=(0.4, 0.0, 0.2), workspace=Workspace())
        results.append((image, label))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def _rotation(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                     [0, 0, 1]])


def test_blur_in_a_workspace_matches_a_fresh_blur() -> None:
    volume = np.random.default_rng(0).normal(size=(12, 13, 14)).astype(np.float32)
    workspace = Workspace()
    for sigma in [(0.5, 1.5, 0.0), (2.0, 0.3, 0.8)]:
        expected = ndi.gaussian_filter(volume, sigma, mode="nearest")
        np.testing.assert_allclose(blur(volume, sigma, workspace), expected, atol=1e-6)
        np.testing.assert_allclose(blur(volume, sigma), expected, atol=1e-6)


def test_workspace_reuses_memory_by_key() -> None:
    workspace = Workspace(limit=1 << 12)
    first = workspace.array("a", (10, 10), np.float32)
    assert np.shares_memory(first, workspace.array("a", (5, 20), np.int32))
    assert not np.shares_memory(first, workspace.array("b", (10, 10), np.float32))
    assert not np.shares_memory(workspace.array("big", (2000,), np.float32),
                                workspace.array("big", (2000,), np.float32))


def test_augmenter_shared_by_threads_keeps_windows_apart() -> None:
    volumes, orders = _volumes((50, 50, 40))
    orders = {"image": 0, "label": 0}
    volumes["image"] = volumes["label"].astype(np.float32)
    augmenter = Augmenter(rng=np.random.default_rng(0), **ALL_SPATIAL)
    boxes = [(i, 2 * i, 1, i + 30, 2 * i + 30, 31) for i in range(12)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda box: augmenter.window(volumes, orders, box), boxes))
    for out, box in zip(results, boxes):
        np.testing.assert_array_equal(out["image"], out["label"].astype(np.float32))
        assert out["location"].tolist() == list(box)
    copy = pickle.loads(pickle.dumps(augmenter))
    assert copy.window(volumes, orders, boxes[0])["label"].shape == (30, 30, 30, 1)


# Order 0 and 1 are gathered from a table (a copied block, or the volume itself) with row numbers
# summed in float32 and clipped coordinates: against scipy, a float32 coordinate map carries about
# 1e-5 voxel of rounding, times an intensity gradient of at most ~1 per voxel here, so 1e-4 holds
# with margin; nearest neighbour can flip only on such exact-tie rounding (kept under 1e-3).
@pytest.mark.parametrize("shape", [(30, 28, 26), (70, 64, 60)], ids=["volume-table", "block-table"])
@pytest.mark.parametrize("centre", [(20.0, 17.0, 15.0), (2.0, 40.0, -3.0)], ids=["inside", "across-edges"])
def test_warp_matches_map_coordinates(centre: tuple[float, ...], shape: tuple[int, ...]) -> None:
    volumes, _ = _volumes(shape, seed=3)
    image, label = volumes["image"] * 10.0, volumes["label"].astype(np.uint8)
    transform = SpatialTransform(np.diag([0.9, 1.1, 1.05]) @ _rotation(12.0), centre=np.array(centre))
    out_image, out_label = np.empty((24, 20, 22, 1), np.float32), np.empty((24, 20, 22, 1), np.uint8)
    warp([(image, 1, out_image), (label, 0, out_label)], transform, workspace=Workspace())
    y = np.indices(out_image.shape[:3]).reshape(3, -1) - (np.array([23, 19, 21])[:, None] / 2.0)
    grid = (transform.matrix @ y + np.array(centre)[:, None]).reshape(3, *out_image.shape[:3])
    expected = ndi.map_coordinates(image[..., 0], grid, order=1, mode="nearest")
    np.testing.assert_allclose(out_image[..., 0], expected, atol=1e-4)
    nearest = ndi.map_coordinates(label[..., 0], grid, order=0, mode="nearest")
    assert np.mean(out_label[..., 0] == nearest) > 0.999
    assert np.ptp(out_image) > 1.0 and len(np.unique(out_label)) > 1


def test_warp_row_numbers_stay_exact_past_two_to_the_24() -> None:
    # 4097 x 4096 voxels: the table is the whole volume, and row 4096 * 4096 + 4095 is odd and
    # above 2^24, so it is not a float32 number; the rows are then summed in float64.
    volume = np.zeros((4097, 4096, 1), np.uint8)
    corners = [(0, 0), (0, 4095), (4096, 0), (4096, 4095)]
    for value, corner in enumerate(corners, 1):
        volume[corner] = value
    out = np.empty((2, 2, 1), np.uint8)
    transform = SpatialTransform(np.diag([4096.0, 4095.0]), centre=np.array([2048.0, 2047.5]))
    warp([(volume, 0, out)], transform, workspace=Workspace())
    np.testing.assert_array_equal(out[..., 0], [[1, 2], [3, 4]])


def test_blur_drops_only_taps_below_float32_resolution() -> None:
    volume = np.random.default_rng(0).normal(size=(9, 10, 11)).astype(np.float32)
    # sigma 0.15: scipy's side tap weighs exp(-1 / (2 * 0.15^2)) = 2e-10 of the centre: dropped
    np.testing.assert_array_equal(blur(volume, (0.15, 0.0, 0.15)), volume)
    np.testing.assert_allclose(blur(volume, (0.15, 0.0, 0.15)),
                               ndi.gaussian_filter(volume, (0.15, 0.0, 0.15), mode="nearest"), atol=1e-8)
    # sigma 0.18 (side tap 2e-7) and 0.2 (4e-6) keep it, as scipy does
    for sigma in [(0.18, 0.2, 0.0), (0.0, 0.18, 0.2)]:
        out = blur(volume, sigma)
        assert not np.array_equal(out, volume)
        np.testing.assert_allclose(out, ndi.gaussian_filter(volume, sigma, mode="nearest"), atol=1e-6)


def test_warped_windows_start_on_64_byte_boundaries() -> None:
    # tf.data wraps a 64-byte aligned array as a tensor in place; other arrays are copied first
    volumes, orders = _volumes()
    augmenter = Augmenter(rng=np.random.default_rng(0), rotation=(-10, 10), scaling=(-10, 10))
    for box in [(2, 3, 4, 26, 27, 28), (-3, 1, 0, 14, 19, 21)]:
        out = augmenter.window(volumes, orders, box)
        for name in volumes:
            assert out[name].ctypes.data % 64 == 0 and out[name].flags.c_contiguous, name


def test_workspace_results_are_recycled_only_once_released() -> None:
    workspace = Workspace(results=4)
    first = workspace.result((8, 9, 10, 1), np.float32)
    assert first.ctypes.data % 64 == 0 and first.flags.c_contiguous
    address = first.ctypes.data
    view = first[2:5, ..., 0]
    del first
    held = workspace.result((8, 9, 10, 1), np.float32)
    assert held.ctypes.data != address  # a view of the first one still holds its memory
    del view
    reused = workspace.result((10, 9, 8, 1), np.float32)  # same size, nothing refers to the first
    assert reused.ctypes.data == address and not np.shares_memory(reused, held)


def test_windows_kept_by_the_caller_are_never_overwritten() -> None:
    volumes, orders = _volumes()
    augmenter = Augmenter(rng=np.random.default_rng(1), rotation=(-20, 20), scaling=(-10, 10))
    kept = [augmenter.window(volumes, orders, (i, 2, 3, i + 20, 22, 23)) for i in range(4)]
    copies = [{k: v.copy() for k, v in window.items()} for window in kept]
    for i in range(12):
        augmenter.window(volumes, orders, (i, 1, 1, i + 20, 21, 21))
    for window, copy in zip(kept, copies):
        for name in copy:
            np.testing.assert_array_equal(window[name], copy[name])


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_integer_images_are_blurred_without_wrapping_around(dtype: type) -> None:
    # the anti-aliasing blur reads the volume itself: sums of two bright integer voxels must not
    # wrap in the integer type (200 + 200 in uint8)
    rng = np.random.default_rng(3)
    image = rng.integers(180, 250, size=(30, 28, 26, 1)).astype(dtype)
    kwargs = {"scaling": (-25.0, -25.0), "rotation_z": (10.0, 10.0)}
    box = (4, 3, 2, 24, 23, 22)
    out = _augment_window({"v": image}, {"v": 1}, box, **kwargs)["v"]
    reference = _augment_window({"v": image.astype(np.float32)}, {"v": 1}, box, **kwargs)["v"]
    assert out.dtype == dtype
    np.testing.assert_allclose(out.astype(np.float32), np.rint(reference), atol=1.0)
    assert out.min() >= 150
