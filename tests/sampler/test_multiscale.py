"""Multi-scale windows: the finest channel is the plain window, coarser ones block means."""

from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler import (GridSampler, MultiScaleGridSampler, MultiScaleSampler, UniformSampler,
                              area_resize, cut_window)


def block_mean(array: np.ndarray, k: int) -> np.ndarray:
    x, y, z, c = array.shape
    return array.reshape(x // k, k, y // k, k, z // k, k, c).mean(axis=(1, 3, 5))


def test_area_resize_block_means_and_fractional_factors(image):
    np.testing.assert_allclose(area_resize(image[:16, :20, :12], (8, 10, 6)),
                               block_mean(image[:16, :20, :12], 2), rtol=1e-6)
    # a 3 -> 2 shrink keeps the mean and is a weighted average of neighbours
    row = np.array([0.0, 3.0, 6.0], np.float32).reshape(3, 1, 1, 1)
    np.testing.assert_allclose(area_resize(row, (2, 1, 1)).ravel(), [1.0, 5.0])
    assert area_resize(np.ones((4, 4, 4, 1), np.int32), (2, 2, 2)).dtype == np.float32


def test_finest_channel_is_the_window_and_coarser_are_block_means(image, label):
    sampler = MultiScaleSampler((4, 4, 2), [(4, 4, 2), (8, 8, 4), (16, 16, 8)], 1, None)
    centre = np.array([[8, 10, 6]])
    (window,) = sampler.windows_at({"image": image, "label": label}, centre)
    assert window["image"].shape == (4, 4, 2, 6) and window["image"].dtype == np.float32
    volumes = {"image": image, "label": label}
    plain = cut_window(volumes, [6, 8, 5, 10, 12, 7])
    np.testing.assert_array_equal(window["image"][..., 0:2], plain["image"])
    np.testing.assert_array_equal(window["label"], plain["label"])  # labels: the window only
    np.testing.assert_array_equal(window["location"], plain["location"])
    middle = cut_window(volumes, [4, 6, 4, 12, 14, 8])["image"]
    np.testing.assert_allclose(window["image"][..., 2:4], block_mean(middle, 2), rtol=1e-6)
    coarse = cut_window(volumes, [0, 2, 2, 16, 18, 10])["image"]  # zero-filled past z = 12
    np.testing.assert_allclose(window["image"][..., 4:6], block_mean(coarse, 4), rtol=1e-6)


def test_random_centres_keep_the_window_inside(image, label):
    rng = np.random.default_rng(0)
    sampler = MultiScaleSampler((4, 4, 4), [(4, 4, 4), (12, 12, 12)], 3, rng,
                                centres=UniformSampler((4, 4, 4), 3, rng))
    windows = sampler({"image": image, "label": label})
    for window in windows:
        box = window["location"]
        assert np.all(box[:3] >= 0) and np.all(box[3:] <= image.shape[:3])
        np.testing.assert_array_equal(window["label"], cut_window({"l": label}, box)["l"])


@pytest.mark.parametrize("sizes", [[(8, 8, 8)], [(4, 4, 4), (3, 8, 8)], [(4, 4, 4), (7, 8, 8)], []])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError):
        MultiScaleSampler((4, 4, 4), sizes, 1, None)


def test_grid_variant_adds_context_to_the_plain_grid(image):
    grid = GridSampler(image, (8, 10, 6), (1, 1, 1))
    multi = MultiScaleGridSampler(image, (8, 10, 6), (1, 1, 1), [(8, 10, 6), (16, 20, 12)])
    np.testing.assert_array_equal(multi.locations, grid.locations)
    (plain, locations), = list(grid.batches(len(grid)))
    (windows, same), = list(multi.batches(len(multi)))
    np.testing.assert_array_equal(same, locations)
    assert windows.shape == plain.shape[:4] + (4,)
    np.testing.assert_array_equal(windows[..., :2], plain)
    sampler = MultiScaleSampler((8, 10, 6), [(8, 10, 6), (16, 20, 12)], 1, None)
    for window, location in zip(windows, locations):
        centre = location[:3] + np.array([4, 5, 3])
        (expected,) = sampler.windows_at({"image": image}, centre[None])
        np.testing.assert_allclose(window[..., 2:], expected["image"][..., 2:], rtol=1e-6)
