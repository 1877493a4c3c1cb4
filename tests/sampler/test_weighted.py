from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from niftykit.sampler.weighted import WeightedSampler

SHAPE, WINDOW = (12, 12, 12), (4, 4, 4)
VALID = (slice(2, 11),) * 3  # centres whose 4-voxel window fits: starts 0..8


def sampler(seed=0, n=1, window=WINDOW, **kwargs):
    return WeightedSampler(window, n, np.random.default_rng(seed), **kwargs)


def counts_of(centres, shape=SHAPE):
    return np.bincount(np.ravel_multi_index(centres.T, shape), minlength=int(np.prod(shape))).reshape(shape)


def read_only(array):
    array.flags.writeable = False
    return array


@pytest.fixture
def prior():
    """A 12^3 map: random weights in [0.5, 1.5], some zeros, and huge values on the
    border, where no window centre may lie."""
    rng = np.random.default_rng(1)
    prior = rng.uniform(0.5, 1.5, SHAPE)
    prior[rng.random(SHAPE) < 0.1] = 0.0
    prior[:2] = prior[-1:] = 1000.0
    return prior[..., None].astype(np.float32)


def test_centre_frequencies_follow_the_valid_region_of_the_map(prior):
    centres = sampler().centres({"sampler": prior}, 20_000)
    counts = counts_of(centres)
    assert counts.sum() == counts[VALID].sum() == 20_000  # nothing from the border
    weights = prior[VALID][..., 0].astype(np.float64)
    assert counts[VALID][weights == 0].sum() == 0
    observed, expected = counts[VALID][weights > 0], weights[weights > 0]
    # ~650 cells, about 28 draws expected in each (>= 14): chi-square applies.
    # With the right distribution p is uniform on [0, 1], so p > 1e-3 fails a
    # correct sampler one time in a thousand (and never with this seed).
    assert chisquare(observed, expected / expected.sum() * observed.sum()).pvalue > 1e-3


def test_a_wrong_distribution_would_fail_the_test(prior):
    centres = sampler().centres({"sampler": prior}, 20_000)
    observed = counts_of(centres)[VALID][prior[VALID][..., 0] > 0]
    assert chisquare(observed).pvalue < 1e-6  # uniform is not what was drawn


def test_negative_maps_are_shifted(prior):
    shifted = sampler(seed=5).centres({"sampler": prior - 1.5}, 20_000)
    # the zeros become the minimum, -1.5, so shifting restores the original weights
    weights = prior[VALID][..., 0].astype(np.float64)
    observed = counts_of(shifted)[VALID][weights > 0]
    expected = weights[weights > 0]
    assert chisquare(observed, expected / expected.sum() * observed.sum()).pvalue > 1e-3


@pytest.mark.parametrize("value", [0.0, 3.0, -2.0])
def test_zero_or_constant_map_is_uniform(value):
    prior = np.full(SHAPE + (1,), value, np.float32)
    prior[0] = 50.0  # outside the valid region: ignored
    counts = counts_of(sampler(seed=2).centres({"sampler": prior}, 20_000))
    assert counts.sum() == counts[VALID].sum()
    assert np.all(counts[VALID] > 0)  # 729 cells, ~27 each: all hit
    assert chisquare(counts[VALID].ravel()).pvalue > 1e-3


def test_windows_stay_inside_and_leave_the_map_out(prior, image):
    image = image[:12, :12, :12]
    windows = sampler(n=200, window=(5, 6, 4))({"image": image, "sampler": prior})
    for window in windows:
        assert set(window) == {"image", "location"}
        x0, y0, z0, x1, y1, z1 = window["location"]
        assert min(x0, y0, z0) >= 0 and max(x1, y1, z1) <= 12
        assert (x1 - x0, y1 - y0, z1 - z0) == (5, 6, 4)
        np.testing.assert_array_equal(window["image"], image[x0:x1, y0:y1, z0:z1])


def test_centre_is_at_half_a_window_from_the_start():
    prior = np.zeros(SHAPE + (1,), np.float32)
    prior[7, 3, 9] = 1.0
    boxes = sampler(window=(5, 4, 1)).locations({"sampler": prior}, 10)
    np.testing.assert_array_equal(boxes, np.tile([5, 1, 9, 10, 5, 10], (10, 1)))


def test_cdf_is_built_once_per_read_only_map(prior, monkeypatch):
    calls = []
    cumsum = np.cumsum
    monkeypatch.setattr(np, "cumsum", lambda *a, **k: calls.append(1) or cumsum(*a, **k))
    weighted = sampler(n=8)
    volumes = {"sampler": read_only(prior)}
    for _ in range(5):
        weighted(volumes)
    assert len(calls) == 1
    weighted({"sampler": read_only(prior.copy())})  # another volume
    weighted(volumes)  # still cached
    assert len(calls) == 2
    weighted({"sampler": prior.copy()})  # writeable: may change in place, so not cached
    weighted({"sampler": prior.copy()})
    assert len(calls) == 4


def test_2d_maps_and_2d_windows(prior):
    flat = np.ascontiguousarray(prior[:, :, 5:6])
    centres = sampler(window=(4, 4)).centres({"sampler": flat}, 2000)
    assert np.all(centres[:, 2] == 0)
    assert counts_of(centres, (12, 12, 1))[VALID[:2]].sum() == 2000
    boxes = sampler(window=(4, 4)).locations({"sampler": prior}, 2000)  # 2.5-D
    assert set(boxes[:, 2]) == set(range(12)) and np.all(boxes[:, 5] - boxes[:, 2] == 1)


def test_missing_or_bad_map_is_an_error(prior, image):
    with pytest.raises(ValueError, match="'weights'"):
        sampler(map_name="weights")({"image": image})
    with pytest.raises(ValueError, match="one channel"):
        sampler()({"sampler": image})
    prior[5, 5, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        sampler()({"sampler": prior})
