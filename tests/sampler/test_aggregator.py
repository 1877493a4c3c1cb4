from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from niftykit.sampler import GridAggregator, GridSampler
from niftykit.sampler.aggregator import MODES, gaussian_importance_map, label_dtype

CASES = [
    ((16, 20, 12), (8, 8, 8), (0, 0, 0)),
    ((16, 20, 12), (7, 9, 5), (1, 2, 0)),
    ((16, 20, 12), (-1, 10, 6), (2, 2, 1)),
    ((5, 6, 7), (10, 10, 10), (2, 2, 2)),
    ((17, 3, 19), (8, 8, 8), (3, 1, 2)),
]


def run(volume, window, border, network, num_channels, batch_size=3, overlap=0.0, **kwargs):
    sampler = GridSampler(volume, window, border, overlap=overlap)
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
    shrink = lambda w: w[:, 1:-2, 1:-1, 1:-1]
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


# -- modes, overlap and streamed labels ------------------------------------------

MODE_CASES = [  # shape, window, border, overlap
    ((16, 20, 12), (8, 8, 8), (0, 0, 0), 0.0),
    ((17, 19, 13), (8, 8, 8), (0, 0, 0), 0.5),
    ((17, 19, 13), (9, 7, 5), (1, 2, 1), 0.3),
    ((11, 13, 9), (4, 5, 3), (0, 0, 0), 0.75),
    ((5, 6, 7), (10, 10, 10), (2, 2, 2), 0.5),
    ((5, 30, 7), (8, 8, 8), (0, 1, 0), 0.5),
    ((23, 17, 1), (8, 8, 1), (0, 0, 0), 0.5),
    ((23, 17, 1), (9, 9, 1), (2, 2, 0), 0.25),
]


def probabilities(shape, channels, seed=0):
    """Random (x, y, z, C) scores whose maximum beats the runner-up by >= 1."""
    rng = np.random.default_rng(seed)
    scores = rng.random(shape + (channels,), dtype=np.float32)
    winner = rng.integers(0, channels, size=shape)
    np.put_along_axis(scores, winner[..., np.newaxis], 1.5, axis=-1)
    return scores, winner


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "window", "border", "overlap"), MODE_CASES)
def test_identity_network_reconstructs_the_volume_in_every_mode(mode, shape, window, border, overlap):
    volume = np.random.default_rng(5).normal(size=shape + (2,)).astype(np.float32)
    result = run(volume, window, border, lambda w: w, 2, overlap=overlap, mode=mode, fill_constant=np.nan)
    assert result.shape == volume.shape and result.dtype == np.float32 and result.flags["C_CONTIGUOUS"]
    if mode == "crop":
        np.testing.assert_array_equal(result, volume)
    else:
        np.testing.assert_allclose(result, volume, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("shape", "window", "border", "overlap"), MODE_CASES)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_streamed_labels_are_the_argmax(mode, shape, window, border, overlap, batch_size):
    scores, winner = probabilities(shape, 5)
    result = run(scores, window, border, lambda w: w, 5, batch_size, overlap, mode=mode, output="labels")
    assert result.shape == shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result, winner)


def test_labels_slab_memory_is_a_window_deep_not_a_volume():
    shape, channels, window = (96, 24, 20), 6, (8, 8, 8)
    scores, winner = probabilities(shape, channels, seed=1)
    sampler = GridSampler(scores, window, (0, 0, 0), overlap=0.5)
    aggregator = GridAggregator(sampler, channels, mode="gaussian", output="labels")
    output_bytes = 4 * np.prod(window) * channels * 2  # one batch of two windows
    tracemalloc.start()
    try:
        for windows, locations in sampler.batches(2):
            aggregator.add(windows, locations)
        result = aggregator.result()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    slab = window[0] * shape[1] * shape[2] * channels * 4
    bound = slab + np.prod(shape) * result.itemsize + 4 * np.prod(window)  # slab + labels + importance map
    assert aggregator.peak_nbytes <= bound
    assert bound < np.prod(shape) * channels * 4 / 4  # well under the float volume
    assert traced_peak <= bound + 2 * output_bytes
    np.testing.assert_array_equal(result, winner)


def test_labels_need_the_sampler_order_but_probabilities_do_not():
    scores, _ = probabilities((16, 8, 8), 3)
    sampler = GridSampler(scores, (8, 8, 8), (0, 0, 0), overlap=0.5)
    batches = list(sampler.batches(1))[::-1]
    labels = GridAggregator(sampler, 3, mode="mean", output="labels")
    labels.add(*batches[0])
    with pytest.raises(ValueError, match="raster order.*x=4 after one at x=8"):
        labels.add(*batches[1])
    mean = GridAggregator(sampler, 3, mode="mean")
    for windows, locations in batches:
        mean.add(windows, locations)
    np.testing.assert_allclose(mean.result(), scores, atol=1e-6)


def overlapping_constant_windows(mode):
    """Two windows (x 0..8 and 4..12) whose outputs are 1 and 3 everywhere."""
    sampler = GridSampler(np.zeros((12, 1, 1, 1), np.float32), (8, 1, 1), (0, 0, 0), overlap=0.5)
    aggregator = GridAggregator(sampler, 1, mode=mode)
    for value, (windows, locations) in zip((1.0, 3.0), sampler.batches(1)):
        aggregator.add(np.full_like(windows, value), locations)
    return aggregator.result()[:, 0, 0, 0]


def test_overlaps_are_overwritten_averaged_or_weighted():
    np.testing.assert_array_equal(overlapping_constant_windows("crop"), [1] * 4 + [3] * 8)
    np.testing.assert_allclose(overlapping_constant_windows("mean"), [1] * 4 + [2] * 4 + [3] * 4)
    weights = gaussian_importance_map((8, 1, 1))[:, 0, 0]
    first, second = weights[4:], weights[:4]  # the overlap x = 4..7 seen by each window
    expected = np.concatenate([[1] * 4, (first * 1 + second * 3) / (first + second), [3] * 4])
    np.testing.assert_allclose(overlapping_constant_windows("gaussian"), expected, rtol=1e-6)


def test_gaussian_map_peaks_at_the_centre_with_sigma_an_eighth_of_the_window():
    weights = gaussian_importance_map((17, 16, 1))
    assert weights.shape == (17, 16, 1) and weights.dtype == np.float32
    assert weights.max() == weights[8, 7, 0] == weights[8, 8, 0] == 1.0
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(weights, np.flip(weights, axis))
    sigma_x, sigma_y = 17 / 8, 16 / 8
    np.testing.assert_allclose(weights[8 + 3, 7, 0], np.exp(-9 / (2 * sigma_x**2)), rtol=1e-6)
    np.testing.assert_allclose(weights[8, 7 + 2, 0] / weights[8, 7, 0], np.exp(-(1.5**2 - 0.5**2) / (2 * sigma_y**2)),
                               rtol=1e-6)
    np.testing.assert_array_equal(gaussian_importance_map((9, 9, 1))[:, :, 0], gaussian_importance_map((9, 9, 5))[:, :, 2])


def test_gaussian_map_edges_are_clamped_positive():
    weights = gaussian_importance_map((64, 64, 64))
    assert weights.min() == np.float32(1e-3) and weights[4, 31, 31] > 1e-3 and weights[0, 0, 0] == weights.min()


def test_label_dtype_is_the_smallest_that_holds_the_classes():
    assert label_dtype(2) == np.uint8 and label_dtype(256) == np.uint8
    assert label_dtype(257) == np.uint16 and label_dtype(70000) == np.uint32


def test_result_is_final_and_refuses_more_windows():
    sampler = GridSampler(np.ones((8, 8, 8, 1), np.float32), (8, 8, 8), (0, 0, 0))
    aggregator = GridAggregator(sampler, 1, mode="mean", output="labels")
    windows, locations = next(sampler.batches(1))
    aggregator.add(windows, locations)
    assert aggregator.result() is aggregator.result()
    with pytest.raises(RuntimeError, match="result"):
        aggregator.add(windows, locations)


def test_unknown_mode_output_and_foreign_locations_are_refused():
    sampler = GridSampler(np.zeros((8, 8, 8, 1), np.float32), (4, 4, 4), (0, 0, 0))
    with pytest.raises(ValueError, match="mode must be one of"):
        GridAggregator(sampler, 1, mode="hann")
    with pytest.raises(ValueError, match="output must be one of"):
        GridAggregator(sampler, 1, output="argmax")
    aggregator = GridAggregator(sampler, 1, mode="gaussian")
    with pytest.raises(ValueError, match=r"not a \(4, 4, 4\) window"):
        aggregator.add(np.zeros((1, 8, 8, 8, 1)), np.array([[0, 0, 0, 8, 8, 8]]))
