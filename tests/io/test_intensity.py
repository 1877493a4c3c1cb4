from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import ndimage

from niftykit.errors import DataError
from niftykit.io.intensity import ct_window, foreground_mask, percentile_clip, whiten


def _ball(shape=(24, 24, 24), centre=(12, 12, 12), radius=7.0) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return dist <= radius


@pytest.fixture
def bimodal() -> tuple[np.ndarray, np.ndarray]:
    """A bright ball (mean 100) in a dark noisy background (mean 10), one channel."""
    truth = _ball()
    rng = np.random.default_rng(1)
    image = np.where(truth, 100.0, 10.0) + rng.normal(0, 5, truth.shape)
    return image[..., None].astype(np.float32), truth


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_otsu_finds_the_bright_object(bimodal):
    image, truth = bimodal
    mask = foreground_mask(image, "otsu_plus")
    assert mask.shape == truth.shape and mask.dtype == bool
    # the result is the thresholded ball dilated twice (6-connected cross)
    expected = ndimage.binary_dilation(truth, iterations=2)
    assert _iou(mask, expected) > 0.95
    assert mask[truth].all() and not mask[0, 0, 0]


def test_otsu_minus_and_thresholds(bimodal):
    image, truth = bimodal
    minus = foreground_mask(image, "otsu_minus")
    assert minus[0, 0, 0] and minus.mean() > 0.9  # dark background, dilated into the ball
    centred = image - 55.0  # ball > 0, background < 0
    assert _iou(foreground_mask(centred, "threshold_plus"), ndimage.binary_dilation(truth, iterations=2)) > 0.95
    assert foreground_mask(centred, "threshold_minus")[0, 0, 0]
    clean = np.where(truth, 100.0, 10.0)[..., None]  # mean 19.4: noise would leak through
    np.testing.assert_array_equal(foreground_mask(clean, "mean_plus"), ndimage.binary_dilation(truth, iterations=2))


def test_holes_are_filled():
    shell = _ball(radius=9.0) & ~_ball(radius=6.0)
    image = np.where(shell, 50.0, 0.0)[..., None]
    mask = foreground_mask(image, "threshold_plus")
    assert mask[12, 12, 12]  # the inside of the shell
    assert not mask[0, 0, 0]


def test_single_slice_holes_are_filled_in_2d():
    ring = np.zeros((20, 20, 1, 1))
    ring[4:16, 4:16] = 1.0
    ring[7:13, 7:13] = 0.0
    mask = foreground_mask(ring, "threshold_plus")
    assert mask.shape == (20, 20, 1)
    assert mask[10, 10, 0] and not mask[0, 0, 0]


def test_channel_fusion_shapes_and_logic():
    left = np.zeros((20, 20, 20))
    right = np.zeros((20, 20, 20))
    left[2:12, 5:15, 5:15] = 1.0
    right[8:18, 5:15, 5:15] = 1.0
    image = np.stack([left, right], axis=-1)
    both = foreground_mask(image, "threshold_plus", "and")
    either = foreground_mask(image, "threshold_plus", "or")
    multi = foreground_mask(image, "threshold_plus", "multi")
    assert both.shape == either.shape == (20, 20, 20)
    assert multi.shape == (20, 20, 20, 2) and multi.dtype == bool
    np.testing.assert_array_equal(both, multi[..., 0] & multi[..., 1])
    np.testing.assert_array_equal(either, multi[..., 0] | multi[..., 1])
    assert both.sum() < either.sum()
    assert multi[3, 10, 10, 0] and not multi[3, 10, 10, 1]


def test_all_zero_channel_is_left_out_of_and():
    present = np.zeros((16, 16, 16))
    present[4:12, 4:12, 4:12] = 5.0
    image = np.stack([present, np.zeros_like(present)], axis=-1)
    mask = foreground_mask(image, "threshold_plus", "and")
    assert mask[8, 8, 8] and not mask[0, 0, 0]


def test_empty_mask_becomes_whole_volume_with_warning(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("niftykit"), "propagate", True)
    image = -np.ones((8, 8, 8, 1), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        mask = foreground_mask(image, "threshold_plus")
    assert mask.all() and mask.shape == (8, 8, 8)
    assert "empty" in caplog.text
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        multi = foreground_mask(np.full((8, 8, 8, 2), 3.0), "otsu_plus", "multi")
    assert multi.all() and multi.shape == (8, 8, 8, 2)


def test_unknown_foreground_type_names_the_options():
    with pytest.raises(ValueError, match="otsu_plus"):
        foreground_mask(np.ones((4, 4, 4, 1)), "otsu")
    with pytest.raises(ValueError, match="multi"):
        foreground_mask(np.ones((4, 4, 4, 1)), "otsu_plus", "xor")


def test_whitening_inside_mask_and_same_transform_outside(bimodal):
    image, truth = bimodal
    image = np.concatenate([image, 3.0 * image + 7.0], axis=-1)
    original = image.copy()
    out = whiten(image, truth)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(image, original)  # input untouched
    for c in range(2):
        inside = out[..., c][truth].astype(np.float64)
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1.0) < 1e-4
        values = image[..., c][truth].astype(np.float64)
        expected = (image[..., c].astype(np.float64) - values.mean()) / values.std()
        np.testing.assert_allclose(out[..., c][~truth], expected[~truth], rtol=1e-5, atol=1e-5)
    # outside-mask voxels are far below the (unit-variance) foreground
    assert out[..., 0][~truth].mean() < -2.0


def test_whitening_whole_volume_and_per_channel_mask(volume):
    out = whiten(volume[..., None] * 4 + 2)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    image = np.stack([volume, volume * 10], axis=-1)
    mask = np.zeros(image.shape, dtype=bool)
    mask[:8, ..., 0] = True
    mask[8:, ..., 1] = True
    out = whiten(image, mask)
    assert abs(out[..., 0][:8].mean()) < 1e-5 and abs(out[..., 1][8:].std() - 1) < 1e-4


def test_whitening_constant_image_and_bad_masks():
    out = whiten(np.full((4, 4, 4, 1), 5.0))
    assert np.all(out == 0)  # std floored at 1e-5, no division by zero
    with pytest.raises(DataError, match="channel 0 is empty"):
        whiten(np.ones((4, 4, 4, 1)), np.zeros((4, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="mask shape"):
        whiten(np.ones((4, 4, 4, 1)), np.ones((4, 4, 3), dtype=bool))


def test_ct_window_values_and_range():
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32).reshape(5, 1, 1, 1)
    out = ct_window(hu, -160.0, 240.0)
    np.testing.assert_allclose(out.ravel(), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
    assert out.dtype == np.float32
    out = ct_window(hu, -160.0, 240.0, out_range=(-1.0, 1.0))
    np.testing.assert_allclose(out.ravel(), [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match="greater than low"):
        ct_window(hu, 100.0, 100.0)


def test_percentile_clip_per_channel_and_mask():
    ramp = np.arange(101, dtype=np.float32).reshape(101, 1, 1)
    image = np.stack([ramp, ramp * 2], axis=-1)
    out = percentile_clip(image, 5.0, 95.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose([out[..., 0].min(), out[..., 0].max()], [5.0, 95.0])
    np.testing.assert_allclose([out[..., 1].min(), out[..., 1].max()], [10.0, 190.0])
    np.testing.assert_array_equal(out[5:96, ..., 0], image[5:96, ..., 0])  # the middle is untouched
    mask = np.zeros(ramp.shape, dtype=bool)
    mask[:51] = True  # percentiles of 0..50 only
    out = percentile_clip(image, 0.0, 50.0, mask)
    np.testing.assert_allclose([out[..., 0].min(), out[..., 0].max()], [0.0, 25.0])
    with pytest.raises(ValueError, match="low_pct < high_pct"):
        percentile_clip(image, 60.0, 40.0)
