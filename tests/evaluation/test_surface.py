from __future__ import annotations

import math

import numpy as np
import pytest

from niftykit.evaluation import (
    average_distance,
    hausdorff,
    hausdorff95,
    surface_dice,
    surface_distances,
    surface_mask,
    surface_metrics,
)

SPACING = (0.7, 1.0, 2.5)


def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of the mask with a face neighbour outside it (outside the image counts)."""
    padded = np.pad(mask, 1)
    inner = np.ones(mask.shape, bool)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def brute_metrics(seg, ref, spacing, tolerance):
    """All-pairs distances between surface voxel centres in mm."""
    s = np.argwhere(brute_surface(seg)) * np.asarray(spacing)
    r = np.argwhere(brute_surface(ref)) * np.asarray(spacing)
    pairwise = np.sqrt(((s[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    to_ref, to_seg = pairwise.min(axis=1), pairwise.min(axis=0)
    both = np.concatenate([to_ref, to_seg])
    return {
        "hausdorff": both.max(),
        "hausdorff95": max(np.percentile(to_ref, 95), np.percentile(to_seg, 95)),
        "average_distance": both.mean(),
        "surface_dice": np.mean(both <= tolerance),
    }


def random_mask(rng, shape=(9, 8, 6), p=0.35):
    return rng.random(shape) < p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_anisotropic_spacing(seed):
    rng = np.random.default_rng(seed)
    seg, ref = random_mask(rng), random_mask(rng)
    ref[:3] = False  # different extents, so distances are not all tiny
    expected = brute_metrics(seg, ref, SPACING, tolerance=1.6)
    assert surface_metrics(seg, ref, SPACING, tolerance_mm=1.6) == pytest.approx(expected)
    assert hausdorff(seg, ref, SPACING) == pytest.approx(expected["hausdorff"])
    assert hausdorff95(seg, ref, SPACING) == pytest.approx(expected["hausdorff95"])
    assert average_distance(seg, ref, SPACING) == pytest.approx(expected["average_distance"])
    assert surface_dice(seg, ref, SPACING, 1.6) == pytest.approx(expected["surface_dice"])


def test_surface_is_mask_minus_six_connected_erosion():
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True
    surface = surface_mask(mask)
    assert surface.sum() == 26 and not surface[2, 2, 2]
    np.testing.assert_array_equal(surface, brute_surface(mask))
    full = np.ones((3, 3, 3), bool)  # the image border counts as outside
    assert surface_mask(full).sum() == 26


def test_hd95_takes_the_larger_directed_percentile():
    seg = np.zeros((30, 1, 1), bool)
    ref = seg.copy()
    seg[0:20] = True  # one voxel thick: every voxel is on the surface
    ref[0:10] = True
    to_ref, to_seg = surface_distances(seg, ref, (1.0, 1.0, 1.0))
    np.testing.assert_allclose(np.sort(to_ref), [0.0] * 10 + list(range(1, 11)))
    np.testing.assert_allclose(to_seg, np.zeros(10))
    # directed 95th percentiles: 9 + 0.05 * (10 - 9) and 0; pooled would give 8.55
    assert hausdorff95(seg, ref) == pytest.approx(9.05)
    assert np.percentile(np.concatenate([to_ref, to_seg]), 95) == pytest.approx(8.55)


def test_two_voxels_by_hand():
    seg = np.zeros((4, 4, 4), bool)
    ref = seg.copy()
    seg[1, 1, 0] = True
    ref[2, 1, 2] = True  # 1 step in x (0.7 mm), 2 in z (5 mm)
    distance = math.hypot(0.7, 5.0)
    values = surface_metrics(seg, ref, SPACING, tolerance_mm=5.0)
    assert values["hausdorff"] == pytest.approx(distance)
    assert values["hausdorff95"] == pytest.approx(distance)
    assert values["average_distance"] == pytest.approx(distance)
    assert values["surface_dice"] == 0.0
    assert surface_dice(seg, ref, SPACING, tolerance_mm=5.1) == 1.0


def test_cropping_changes_nothing():
    rng = np.random.default_rng(5)
    seg, ref = random_mask(rng, (6, 5, 4)), random_mask(rng, (6, 5, 4))
    big_seg, big_ref = np.zeros((20, 20, 20), bool), np.zeros((20, 20, 20), bool)
    big_seg[7:13, 3:8, 11:15], big_ref[7:13, 3:8, 11:15] = seg, ref
    assert surface_metrics(big_seg, big_ref, SPACING) == pytest.approx(surface_metrics(seg, ref, SPACING))


def test_empty_mask_conventions():
    empty = np.zeros((4, 4, 4), bool)
    mask = empty.copy()
    mask[1:3, 1:3, 1:3] = True
    assert all(math.isnan(v) for v in surface_metrics(empty, empty, SPACING).values())
    for seg, ref in ((empty, mask), (mask, empty)):
        assert surface_metrics(seg, ref, SPACING) == {
            "hausdorff": math.inf, "hausdorff95": math.inf, "average_distance": math.inf, "surface_dice": 0.0}
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(empty, mask)


def test_identical_masks_score_perfectly():
    mask = random_mask(np.random.default_rng(3))
    assert surface_metrics(mask, mask, SPACING) == {
        "hausdorff": 0.0, "hausdorff95": 0.0, "average_distance": 0.0, "surface_dice": 1.0}


def test_bad_spacing_and_shapes():
    mask = np.ones((2, 2, 2), bool)
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(mask, mask, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(mask, mask, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        hausdorff(mask, mask[:1])
