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
