from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler import GridAggregator, GridSampler

CASES = [
    ((16, 20, 12), (8, 8, 8), (0, 0, 0)),
    ((16, 20, 12), (7, 9, 5), (1, 2, 0)),
    ((16, 20, 12), (-1, 10, 6), (2, 2, 1)),
    ((5, 6, 7), (10, 10, 10), (2, 2, 2)),
    ((17, 3, 19), (8, 8, 8), (3, 1, 2)),
]


def run(volume, window, border, network, num_channels, batch_size=3, **kwargs):
    sampler = GridSampler(volume, window, border)
    aggregator = GridAggregator(sampler, num_channels, **kwargs)
    for windows, locations in sampler.batches(batch_size):
        aggregator.add(network(windows), locations)
    return aggregator.result()


def crop(margin):
    return lambda windows: windows[:, margin:-margin, margin:-margin, margin:-margin]


@pytest.mark.parametrize(("shape", "window", "border"), CASES)
def test_identity_network_reconstructs_the_volume(shape, window, border):
    volume = np.random.default_rng(1).normal(size=shape + (2,)).astype(np.float32)
    result = run(volume, window, border, lambda w: w, 2, fill_constant=np.nan)
    assert result.shape == volume.shape and result.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(result, volume)


@pytest.mark.parametrize("border", [2, 3])
def test_valid_convolution_output_with_enough_border(border):
    volume = np.random.default_rng(2).normal(size=(18, 13, 9, 1)).astype(np.float32)
    result = run(volume, (10, 10, 10), (border,) * 3, crop(2), 1, fill_constant=np.nan)
    np.testing.assert_array_equal(result, volume)


def test_output_smaller_than_the_bordered_window_says_which_border():
    volume = np.zeros((12, 12, 12, 1), np.float32)
    expected = r"output \(4, 4, 4\) does not cover window \(10, 10, 10\) minus border \(2, 2, 2\).*at least \(3, 3, 3\)"
    with pytest.raises(ValueError, match=expected):
        run(volume, (10, 10, 10), (2, 2, 2), crop(3), 1)


def test_odd_shrink_needs_the_larger_side():
    volume = np.random.default_rng(3).normal(size=(12, 12, 12, 1)).astype(np.float32)
    shrink = lambda w: w[:, 1:-2, 1:-1, 1:-1]  # noqa: E731 - 3 voxels off x, centred by floor
    with pytest.raises(ValueError, match=r"at least \(2, 1, 1\)"):
        run(volume, (10, 10, 10), (1, 1, 1), shrink, 1)
    np.testing.assert_array_equal(run(volume, (10, 10, 10), (2, 1, 1), shrink, 1), volume)


def test_integer_outputs_without_channel_axis():
    labels = np.random.default_rng(4).integers(0, 5, size=(9, 10, 11, 1)).astype(np.float32)
    result = run(labels, (4, 4, 4), (1, 1, 1), lambda w: w[..., 0].astype(np.int32), 1, dtype=np.int32)
    assert result.dtype == np.int32
    np.testing.assert_array_equal(result, labels.astype(np.int32))


def test_later_windows_overwrite_earlier_ones():
    volume = np.zeros((10, 4, 4, 1), np.float32)
    sampler = GridSampler(volume, (8, 4, 4), (0, 0, 0))
    aggregator = GridAggregator(sampler, 1)
    for index, (windows, locations) in enumerate(sampler.batches(1)):
        aggregator.add(np.full_like(windows, index + 1), locations)
    result = aggregator.result()[:, 0, 0, 0]
    np.testing.assert_array_equal(result, [1, 1, 2, 2, 2, 2, 2, 2, 2, 2])


def test_result_before_all_windows_is_refused():
    sampler = GridSampler(np.zeros((16, 16, 16, 1), np.float32), (8, 8, 8), (0, 0, 0))
    aggregator = GridAggregator(sampler, 1)
    windows, locations = next(sampler.batches(2))
    aggregator.add(windows, locations)
    with pytest.raises(RuntimeError, match="2 of 8 windows"):
        aggregator.result()


def test_channel_and_location_mismatches_are_refused():
    sampler = GridSampler(np.zeros((8, 8, 8, 1), np.float32), (8, 8, 8), (0, 0, 0))
    aggregator = GridAggregator(sampler, 3)
    windows, locations = next(sampler.batches(1))
    with pytest.raises(ValueError, match=r"\(B, x, y, z, 3\)"):
        aggregator.add(windows, locations)
    with pytest.raises(ValueError, match=r"locations must be \(1, 6\)"):
        aggregator.add(np.zeros((1, 8, 8, 8, 3)), locations[:, :3])
