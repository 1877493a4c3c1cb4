from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler import GridSampler


def test_starts_step_and_flush_last_window(image):
    sampler = GridSampler(image, (8, 8, 12), (0, 0, 0))
    assert sorted(set(sampler.locations[:, 0])) == [0, 8]
    assert sorted(set(sampler.locations[:, 1])) == [0, 8, 12]
    assert sorted(set(sampler.locations[:, 2])) == [0]
    assert len(sampler) == 6
    assert len({tuple(loc) for loc in sampler.locations}) == len(sampler)


def test_border_pads_and_shrinks_the_step(image):
    sampler = GridSampler(image, (8, 8, 8), (2, 1, 0))
    np.testing.assert_array_equal(sampler.pad_before, [2, 1, 0])
    assert sampler.padded_shape == (20, 22, 12)
    assert sampler.original_shape == (16, 20, 12)
    assert sorted(set(sampler.locations[:, 0] + 2)) == [0, 4, 8, 12]
    assert sorted(set(sampler.locations[:, 1] + 1)) == [0, 6, 12, 14]


def test_small_volume_is_padded_to_the_window():
    sampler = GridSampler(np.ones((5, 6, 7, 1), np.float32), (10, 10, 10), (1, 1, 1))
    assert sampler.padded_shape == (10, 10, 10)
    np.testing.assert_array_equal(sampler.pad_before, [2, 2, 1])
    np.testing.assert_array_equal(sampler.locations, [[-2, -2, -1, 8, 8, 9]])


def test_whole_extent_window_includes_the_border(image):
    sampler = GridSampler(image, (-1, 0, 0), (1, 1, 1))
    assert sampler.window_size == (18, 22, 14)
    assert len(sampler) == 1


@pytest.mark.parametrize(("window", "border"), [((8, 8, 8), (0, 0, 0)), ((7, 9, 5), (1, 2, 0)), ((6, 6, 6), (2, 2, 2))])
def test_every_voxel_is_in_a_window_centre(image, window, border):
    sampler = GridSampler(image, window, border)
    covered = np.zeros(image.shape[:3], bool)
    for loc in sampler.locations:
        box = tuple(slice(max(int(loc[i] + border[i]), 0), int(loc[i + 3] - border[i])) for i in range(3))
        covered[box] = True
    assert covered.all()


def test_batches_cover_all_windows_with_a_smaller_last(image):
    sampler = GridSampler(image, (8, 8, 8), (1, 1, 1), pad_mode="constant")
    batches = list(sampler.batches(4))
    assert sum(len(locations) for _, locations in batches) == len(sampler)
    assert all(len(locations) == 4 for _, locations in batches[:-1]) and 1 <= len(batches[-1][1]) <= 4
    windows, locations = batches[0]
    assert windows.shape == (4, 8, 8, 8, 2) and windows.dtype == np.float32
    x0, y0, z0 = locations[0][:3]
    assert (x0, y0, z0) == (-1, -1, -1)
    np.testing.assert_array_equal(windows[0, 1:, 1:, 1:], image[:7, :7, :7])
    assert windows[0, 0].max() == 0.0


def test_minimum_padding_uses_the_volume_minimum():
    volume = np.full((4, 4, 4, 1), 5.0, np.float32)
    windows, _ = next(GridSampler(volume, (6, 6, 6), (1, 1, 1)).batches(1))
    assert windows.min() == 5.0


def test_window_no_larger_than_twice_the_border_is_refused(image):
    with pytest.raises(ValueError, match=r"window size \(4, 8, 8\).*border \(2, 1, 1\)"):
        GridSampler(image, (4, 8, 8), (2, 1, 1))


def test_bad_pad_mode_and_border_are_refused(image):
    with pytest.raises(ValueError, match="pad_mode"):
        GridSampler(image, (8, 8, 8), (0, 0, 0), pad_mode="wrap-around")
    with pytest.raises(ValueError, match="border"):
        GridSampler(image, (8, 8, 8), (0, -1, 0))


def test_overlap_sets_the_step(image):
    sampler = GridSampler(image, (8, 8, 8), (0, 0, 0), overlap=0.5)
    np.testing.assert_array_equal(sampler.step, [4, 4, 4])
    assert sorted(set(sampler.locations[:, 0])) == [0, 4, 8]
    assert sorted(set(sampler.locations[:, 1])) == [0, 4, 8, 12]
    assert sorted(set(sampler.locations[:, 2])) == [0, 4]
    quarter = GridSampler(image, (8, 8, 8), (0, 0, 0), overlap=(0.25, 0.0, 0.9))
    np.testing.assert_array_equal(quarter.step, [6, 8, 1])
    assert sorted(set(quarter.locations[:, 0])) == [0, 6, 8]


def test_overlap_with_a_border_shrinks_the_inner_step(image):
    sampler = GridSampler(image, (8, 8, 8), (1, 1, 1), overlap=0.5)
    np.testing.assert_array_equal(sampler.step, [3, 3, 3])
    assert GridSampler(image, (8, 8, 8), (1, 1, 1)).step.tolist() == [6, 6, 6]


@pytest.mark.parametrize(
    ("shape", "window", "border", "overlap"),
    [((17, 19, 13), (8, 8, 8), (0, 0, 0), 0.5), ((17, 19, 13), (9, 7, 5), (1, 2, 1), 0.3),
     ((5, 6, 7), (10, 10, 10), (2, 2, 2), 0.5), ((23, 17, 1), (8, 8, 1), (0, 0, 0), 0.75)],
)
def test_overlapping_windows_cover_every_voxel_in_raster_order(shape, window, border, overlap):
    sampler = GridSampler(np.zeros(shape + (1,), np.float32), window, border, overlap=overlap)
    covered = np.zeros(shape, bool)
    for loc in sampler.locations:
        box = tuple(slice(max(int(loc[i] + border[i]), 0), int(loc[i + 3] - border[i])) for i in range(3))
        covered[box] = True
    assert covered.all()
    starts = [tuple(loc[:3]) for loc in sampler.locations]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    ends = sampler.locations[:, 3:] + sampler.pad_before
    np.testing.assert_array_equal(ends.max(axis=0), sampler.padded_shape)


@pytest.mark.parametrize("overlap", [1.0, -0.1, (0.5, 0.5), "half"])
def test_bad_overlap_is_refused(image, overlap):
    with pytest.raises(ValueError, match=r"overlap must be a fraction in \[0, 1\)"):
        GridSampler(image, (8, 8, 8), (0, 0, 0), overlap=overlap)
