"""MultiViewSampler: orthogonal views are array slices, oblique ones rotate about an axis."""

from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler import BalancedSampler, MultiViewSampler, UniformSampler, cut_views
from niftykit.sampler.multiview import plane_axes


def test_views_through_a_known_centre_are_the_array_slices(image):
    sampler = MultiViewSampler(6, 1, None, views=("axial", "coronal", "sagittal"))
    (window,) = sampler.windows_at({"image": image}, np.array([[7, 9, 5]]))
    assert window["image"].shape == (6, 6, 1, 3 * 2) and window["image"].dtype == image.dtype
    views = window["image"][:, :, 0]
    np.testing.assert_array_equal(views[..., 0:2], image[4:10, 6:12, 5])   # axial (x, y)
    np.testing.assert_array_equal(views[..., 2:4], image[4:10, 9, 2:8])    # coronal (x, z)
    np.testing.assert_array_equal(views[..., 4:6], image[7, 6:12, 2:8])    # sagittal (y, z)
    # the support is the (2 * (s // 2) + 1)^3 cube around the centre
    np.testing.assert_array_equal(window["location"], [4, 6, 2, 11, 13, 9])


def test_odd_size_and_zero_fill_outside_the_volume(image):
    sampler = MultiViewSampler((5, 5), 1, None, views=("coronal",))
    (window,) = sampler.windows_at({"image": image}, np.array([[0, 3, 11]]))
    plane = window["image"][:, :, 0]
    expected = np.zeros((5, 5, 2), image.dtype)
    expected[2:, :3] = image[0:3, 3, 9:12]
    np.testing.assert_array_equal(plane, expected)


def test_oblique_plane_at_zero_degrees_is_the_axial_view(image):
    cube = image[:9, :9, :9]
    axial = cut_views(cube, 8, ("axial",))
    for axis in ("x", "y"):
        np.testing.assert_array_equal(cut_views(cube, 8, (), oblique=(0.0,), axis=axis), axial)
    # about z the planes run from coronal (0°) to sagittal (90°)
    np.testing.assert_allclose(cut_views(cube, 8, (), (0.0,), "z"), cut_views(cube, 8, ("coronal",)))
    np.testing.assert_allclose(cut_views(cube, 8, (), (90.0,), "z"), cut_views(cube, 8, ("sagittal",)),
                               atol=1e-3)
    np.testing.assert_allclose(cut_views(cube, 8, (), (90.0,), "x"), cut_views(cube, 8, ("coronal",)),
                               atol=1e-3)


def test_oblique_plane_is_trilinear_on_a_linear_volume():
    """A linear intensity ramp is reproduced exactly by trilinear interpolation."""
    grid = np.stack(np.meshgrid(*[np.arange(9.0)] * 3, indexing="ij"), axis=-1)
    ramp = (grid @ np.array([1.0, 10.0, 100.0]))[..., None]
    plane = cut_views(ramp, 9, (), oblique=(30.0,), axis="x")[:, :, 0, 0]
    u, v = plane_axes("x", 30.0)
    offsets = np.arange(9.0) - 4
    points = 4 + offsets[:, None, None] * u + offsets[None, :, None] * v
    np.testing.assert_allclose(plane, points @ np.array([1.0, 10.0, 100.0]), atol=1e-9)


def test_nine_views_and_integer_volumes_use_nearest(image, label):
    sampler = MultiViewSampler(8, 2, None, oblique=6, oblique_axis="x")
    assert sampler.num_views == 9 and sampler.angles[1] == pytest.approx(30.0)
    windows = sampler({"image": image, "label": label})
    assert len(windows) == 2
    assert windows[0]["image"].shape == (8, 8, 1, 18) and windows[0]["label"].shape == (8, 8, 1, 9)
    assert windows[0]["label"].dtype == label.dtype
    assert set(np.unique(windows[0]["label"])) <= set(np.unique(label))
    # no centre sampler: the volume's centre voxel
    centre = np.array(image.shape[:3]) // 2
    np.testing.assert_array_equal(windows[0]["location"][:3], centre - 4)


def test_centres_come_from_a_window_sampler(image, label):
    """Balanced centres: the views' centre voxel has the drawn class."""
    rng = np.random.default_rng(3)
    centres = BalancedSampler((6, 6, 6), 5, rng)
    sampler = MultiViewSampler(6, 5, rng, views=("axial",), centres=centres)
    windows = sampler({"image": image, "label": label})
    for window in windows:
        centre = window["location"][:3] + 3
        assert window["label"][3, 3, 0, 0] == label[tuple(centre)][0]
        assert np.all(centre >= 3) and np.all(centre <= np.array(image.shape[:3]) - 3)
    uniform = MultiViewSampler(6, 4, rng, centres=UniformSampler((6, 6, 6), 4, rng))
    assert len({tuple(w["location"]) for w in uniform({"image": image})}) > 1


@pytest.mark.parametrize("kwargs", [dict(size=(6, 8)), dict(size=(6, 6, 6)), dict(views=("axial", "top")),
                                    dict(views=(), oblique=0), dict(oblique_axis="w")])
def test_bad_arguments(kwargs):
    args = {"size": 6, "samples_per_volume": 1, "rng": None, **kwargs}
    with pytest.raises(ValueError):
        MultiViewSampler(**args)
