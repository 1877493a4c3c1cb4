from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler.resize import ResizeAggregator, ResizeSampler, resize_to


def smooth(shape):
    """A smooth (x, y, z, 1) volume: a low-frequency product of cosines."""
    axes = [np.cos(np.linspace(0, np.pi, s)) for s in shape]
    return np.einsum("i,j,k->ijk", *axes)[..., None].astype(np.float32)


def test_windows_have_the_window_shape_and_whole_volume_location(image, label):
    windows = ResizeSampler((8, 0, 24), 3)({"image": image, "label": label})
    assert len(windows) == 3
    for window in windows:
        assert window["image"].shape == (8, 20, 24, 2) and window["image"].dtype == np.float32
        assert window["label"].shape == (8, 20, 24, 1) and window["label"].dtype == np.int32
        np.testing.assert_array_equal(window["location"], [0, 0, 0, 16, 20, 12])
        np.testing.assert_array_equal(window["image"], windows[0]["image"])
    assert not np.shares_memory(windows[0]["image"], windows[1]["image"])  # copies, to augment apart
    assert set(np.unique(windows[0]["label"])) <= set(np.unique(label))  # order 0 for integer volumes


def test_orders_override_the_default(image):
    ramp = np.arange(16, dtype=np.float32)[:, None, None, None] * np.ones((16, 20, 12, 1), np.float32)
    linear = ResizeSampler((32, 0, 0), 1)({"ramp": ramp})[0]["ramp"]
    nearest = ResizeSampler((32, 0, 0), 1, {"ramp": 0})({"ramp": ramp})[0]["ramp"]
    assert len(np.unique(linear)) > 16 and len(np.unique(nearest)) == 16


def test_voxel_centres_follow_the_grid_mode_convention():
    ramp = np.arange(6, dtype=np.float64)[:, None, None, None]
    out = resize_to(ramp, (15, 1, 1), order=1)[:, 0, 0, 0]
    coordinate = (np.arange(15) + 0.5) * 6 / 15 - 0.5  # edges of the volume on edges of the window
    np.testing.assert_allclose(out, np.clip(coordinate, 0, 5), atol=1e-12)


def test_label_integer_zoom_repeats_voxels_and_round_trips_exactly(label):
    up = ResizeSampler((32, 60, 24), 1)({"label": label})[0]["label"]
    np.testing.assert_array_equal(up, label.repeat(2, 0).repeat(3, 1).repeat(2, 2))
    aggregator = ResizeAggregator((16, 20, 12), 1, order=0)
    aggregator.add(up[None])
    np.testing.assert_array_equal(aggregator.result(), label)
    blocks = label[:8, :10, :6].repeat(2, 0).repeat(2, 1).repeat(2, 2)  # down by 2, then back up
    down = resize_to(blocks, (8, 10, 6), 0)
    np.testing.assert_array_equal(resize_to(down, blocks.shape[:3], 0), blocks)


# Measured errors (max, mean): up 0.023, 0.0057; down 0.055, 0.012 (down then
# up loses detail; a cosine of half a period per volume, linear twice).
@pytest.mark.parametrize("window, max_error, mean_error", [((24, 20, 16), 0.03, 0.008), ((10, 12, 8), 0.07, 0.015)])
def test_smooth_images_round_trip_closely(window, max_error, mean_error):
    volume = smooth((16, 18, 12))
    zoomed = ResizeSampler(window, 1)({"image": volume})[0]["image"]
    aggregator = ResizeAggregator((16, 18, 12), 1)
    aggregator.add(zoomed)
    back = aggregator.result()
    assert back.shape == volume.shape and back.dtype == np.float32
    assert np.abs(back - volume).max() < max_error
    assert np.abs(back - volume).mean() < mean_error


def test_2d_volumes_and_windows():
    volume = smooth((20, 16, 1))
    label = (volume > 0).astype(np.uint8)
    window = ResizeSampler((40, 32), 1)({"image": volume, "label": label})[0]
    assert window["image"].shape == (40, 32, 1, 1) and window["label"].shape == (40, 32, 1, 1)
    np.testing.assert_array_equal(window["location"], [0, 0, 0, 20, 16, 1])
    aggregator = ResizeAggregator((20, 16, 1), 1, order=0)
    aggregator.add(window["label"])
    np.testing.assert_array_equal(aggregator.result(), label)


def test_aggregator_errors():
    aggregator = ResizeAggregator((4, 4, 4), 2)
    with pytest.raises(RuntimeError, match="no output"):
        aggregator.result()
    with pytest.raises(ValueError, match="2"):
        aggregator.add(np.zeros((2, 8, 8, 8, 2)))
    with pytest.raises(ValueError, match="2"):
        aggregator.add(np.zeros((8, 8, 8, 3)))
    with pytest.raises(TypeError, match="orders"):
        ResizeSampler((4, 4, 4), 1, np.random.default_rng(0))
