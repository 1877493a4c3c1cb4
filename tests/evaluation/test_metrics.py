from __future__ import annotations

import math

import numpy as np
import pytest

from niftykit.evaluation import dice_per_label


def test_hand_computed_dice(reference):
    seg = np.zeros_like(reference)
    seg[2:6, 2:6, 2:4] = 1  # 32 voxels, all inside the 64-voxel reference cube
    seg[0:2, 0:2, 0:2] = 2  # 8 voxels, none overlapping
    scores = dice_per_label(seg, reference, [0, 1, 2])
    assert scores[1] == pytest.approx(2 * 32 / (32 + 64))
    assert scores[2] == 0.0
    background = reference.size - 72
    seg_background = reference.size - 40
    overlap = reference.size - 64 - 8 - 8  # voxels background in both
    assert scores[0] == pytest.approx(2 * overlap / (background + seg_background))


def test_identical_volumes_score_one(reference):
    assert dice_per_label(reference, reference, [1, 2]) == {1: 1.0, 2: 1.0}


def test_label_in_neither_volume_is_nan(reference):
    scores = dice_per_label(reference, reference, [7])
    assert math.isnan(scores[7])


def test_label_in_one_volume_only_is_zero(reference):
    assert dice_per_label(np.zeros_like(reference), reference, [2]) == {2: 0.0}


def test_shapes_must_agree(reference):
    with pytest.raises(ValueError, match="shape"):
        dice_per_label(reference[:8], reference, [1])


# -- overlap metrics on boolean masks ------------------------------------------------
from niftykit.evaluation import (  # noqa: E402
    Counts,
    accuracy,
    confusion_counts,
    dice,
    jaccard,
    overlap_metrics,
    precision,
    sensitivity,
    specificity,
    vol_diff,
)

# tp = 2 (indices 1, 2), fp = 1 (index 0), fn = 2 (indices 3, 4), tn = 5
SEG = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
REF = np.array([0, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)


def test_counts_by_hand():
    assert confusion_counts(SEG, REF) == Counts(tp=2, fp=1, fn=2, tn=5)
    assert confusion_counts(SEG.reshape(2, 5), REF.reshape(2, 5)) == Counts(2, 1, 2, 5)


@pytest.mark.parametrize("metric, expected", [
    (dice, 4 / 7), (jaccard, 2 / 5), (sensitivity, 2 / 4), (specificity, 5 / 6),
    (precision, 2 / 3), (accuracy, 7 / 10), (vol_diff, (3 - 4) / 4),
])
def test_overlap_metrics_by_hand(metric, expected):
    assert metric(SEG, REF) == pytest.approx(expected)


def test_vol_diff_is_signed():
    assert vol_diff(REF, SEG) == pytest.approx((4 - 3) / 3)  # over-segmentation: positive
    assert vol_diff(np.zeros(10, bool), REF) == -1.0


def test_both_empty_is_nan_for_every_metric():
    empty = np.zeros((3, 4), bool)
    values = overlap_metrics(confusion_counts(empty, empty))
    assert sorted(values) == sorted(["dice", "jaccard", "sensitivity", "specificity",
                                     "precision", "accuracy", "vol_diff"])
    assert all(math.isnan(v) for v in values.values())
    assert confusion_counts(empty, empty) == Counts(0, 0, 0, 12)


def test_one_empty_mask():
    empty = np.zeros(10, bool)
    assert dice(empty, REF) == 0.0 and jaccard(empty, REF) == 0.0
    assert math.isnan(precision(empty, REF))  # nothing segmented
    assert sensitivity(empty, REF) == 0.0
    assert math.isnan(sensitivity(SEG, empty))  # nothing to find
    assert vol_diff(SEG, empty) == math.inf
    assert specificity(SEG, empty) == pytest.approx(7 / 10)


def test_mask_shapes_must_agree():
    with pytest.raises(ValueError, match="shape"):
        dice(SEG, REF[:5])
