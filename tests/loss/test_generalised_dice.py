import numpy as np
import pytest

from niftykit.loss import LOSSES
from niftykit.loss.generalised_dice import generalised_dice


def _logits_of(probs) -> np.ndarray:
    probs = np.asarray(probs, "float64")
    return np.log(probs).astype("float32").reshape(1, len(probs), 1, 1, -1)


def _labels_of(classes) -> np.ndarray:
    return np.asarray(classes, "int32").reshape(1, -1, 1, 1, 1)


def test_gdsc_square_matches_hand_computation():
    # labels 0, 0, 0, 1; p = 0.5 everywhere
    # ref r = (3, 1), seg s = (2, 2), overlap = (1.5, 0.5), W = 1/r^2 = (1/9, 1)
    # 2 (1.5/9 + 0.5) / (5/9 + 3) = (4/3) / (32/9) = 0.375
    loss = LOSSES.get("GDSC")(np.zeros((1, 4, 1, 1, 2), "float32"), _labels_of([0, 0, 0, 1]))
    assert float(loss) == pytest.approx(1 - 0.375, rel=1e-5)


@pytest.mark.parametrize("name, expected", [
    # W = 1/r = (1/3, 1): 2 (0.5 + 0.5) / (5/3 + 3) = 2 / (14/3) = 3/7
    ("GDSC_Simple", 1 - 3 / 7),
    # W = 1: 2 (1.5 + 0.5) / (5 + 3) = 0.5
    ("GDSC_Uniform", 0.5),
])
def test_gdsc_weightings_match_hand_computation(name, expected):
    loss = LOSSES.get(name)(np.zeros((1, 4, 1, 1, 2), "float32"), _labels_of([0, 0, 0, 1]))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_gdsc_gives_an_absent_class_the_largest_weight():
    # 3 classes, p = 1/3 everywhere, labels 0, 0, 0, 1 (class 2 absent)
    # r = (3, 1, 0), s = (4/3,) * 3, overlap = (1, 1/3, 0); W = (1/9, 1, max = 1)
    # numerator 2 (1/9 + 1/3) = 8/9; denominator 13/27 + 7/3 + max(4/3, 1) = 112/27
    # score (8/9) / (112/27) = 3/14
    loss = LOSSES.get("GDSC")(np.zeros((1, 4, 1, 1, 3), "float32"), _labels_of([0, 0, 0, 1]))
    assert float(loss) == pytest.approx(11 / 14, rel=1e-5)


def test_gdsc_with_no_weighted_voxel_scores_zero():
    weights = np.zeros((1, 4, 1, 1, 1), "float32")
    loss = LOSSES.get("GDSC")(np.zeros((1, 4, 1, 1, 2), "float32"), _labels_of([0, 0, 0, 1]),
                              weights)
    assert float(loss) == pytest.approx(0.0)


def test_gdsc_rejects_unknown_type_weight():
    with pytest.raises(ValueError, match="Square, Simple, Uniform"):
        generalised_dice(np.zeros((1, 2, 1, 1, 2), "float32"), _labels_of([0, 1]),
                         type_weight="Cube")


def test_wgdl_default_matrix_matches_hand_computation():
    # p = (0.7, 0.2, 0.1), (0.2, 0.5, 0.3); labels 0, 1; M = 1 - I
    # delta = 1 - p_true = (0.3, 0.5), error 0.8; alpha = M[0, label] = (0, 1)
    # TP = 0 * 0.7 + 1 * 0.5 = 0.5; WGDL = 1 - 1 / (1 + 0.8)
    loss = LOSSES.get("WGDL")(_logits_of([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]), _labels_of([0, 1]))
    assert float(loss) == pytest.approx(1 - 1 / 1.8, rel=1e-4)


def test_wgdl_uses_the_distance_matrix():
    # M[1, 2] = M[2, 1] = 0.5: delta = (0.2 + 0.1, 0.2 * 1 + 0.3 * 0.5) = (0.3, 0.35)
    # error 0.65, TP = 1 - 0.35 = 0.65; WGDL = 1 - 1.3 / 1.95 = 1/3
    matrix = [[0, 1, 1], [1, 0, 0.5], [1, 0.5, 0]]
    loss = LOSSES.get("WGDL")(_logits_of([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]), _labels_of([0, 1]),
                              distance_matrix=matrix)
    assert float(loss) == pytest.approx(1 / 3, rel=1e-4)


def test_wgdl_all_background_window_predicted_right_scores_zero():
    logits = np.zeros((1, 4, 1, 1, 2), "float32")
    logits[..., 0] = 30.0
    assert float(LOSSES.get("WGDL")(logits, _labels_of([0, 0, 0, 0]))) == pytest.approx(0, abs=1e-4)


def test_wgdl_rejects_a_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"expected \(3, 3\)"):
        LOSSES.get("WGDL")(np.zeros((1, 2, 1, 1, 3), "float32"), _labels_of([0, 1]),
                           distance_matrix=np.ones((2, 2)))
