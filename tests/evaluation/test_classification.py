from __future__ import annotations

import numpy as np
import pytest

from niftykit.evaluation import classification_accuracy, confusion_matrix, roc_auc


def brute_auc(positive, scores):
    """Share of (positive, negative) pairs ordered correctly, ties one half."""
    pos, neg = scores[positive], scores[~positive]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean()


def test_accuracy_and_confusion_matrix_by_hand():
    y_true, y_pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 1]
    assert classification_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    assert confusion_matrix([1], [1], num_classes=4).shape == (4, 4)


def test_confusion_matrix_rejects_bad_classes():
    with pytest.raises(ValueError, match="num_classes=2"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="non-negative integers"):
        confusion_matrix([0, 1.5], [0, 1])


def test_binary_auc_by_hand():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # ties: pairs (0.5 vs 0.5) = 1/2, the other three correct -> 3.5 / 4
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert roc_auc([True, False], [0.3, 0.3]) == 0.5


def test_binary_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(40) < 0.4
    scores = np.round(rng.random(40), 1)  # many ties
    assert roc_auc(y.astype(int), scores) == pytest.approx(brute_auc(y, scores))


def test_one_vs_rest_macro_matches_brute_force():
    rng = np.random.default_rng(1)
    y = np.arange(30) % 3
    scores = np.round(rng.random((30, 3)), 1)
    expected = np.mean([brute_auc(y == c, scores[:, c]) for c in range(3)])
    assert roc_auc(y, scores) == pytest.approx(expected)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="positive and negative"):
        roc_auc([1, 1], [0.2, 0.4])
    with pytest.raises(ValueError, match="class 2"):
        roc_auc([0, 1, 0], np.full((3, 3), 0.3))
