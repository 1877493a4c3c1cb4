import numpy as np
import pytest

from niftykit.errors import NotSupportedError
from niftykit.loss import LOSSES


def _logits_for(labels: np.ndarray, classes: int, scale: float = 20.0) -> np.ndarray:
    return (np.eye(classes)[labels[..., 0]] * scale).astype("float32")


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(2, 6, 6, 6, 1)).astype("int32")


@pytest.mark.parametrize("name", ["Dice", "Dice_NS", "DicePlusXEnt", "CrossEntropy"])
def test_perfect_prediction_scores_near_zero(name, labels):
    loss = float(LOSSES.get(name)(_logits_for(labels, 3), labels))
    assert loss == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("name", ["Dice", "Dice_NS", "DicePlusXEnt", "CrossEntropy"])
def test_wrong_prediction_scores_worse(name, labels):
    wrong = (labels + 1) % 3
    good = float(LOSSES.get(name)(_logits_for(labels, 3), labels))
    bad = float(LOSSES.get(name)(_logits_for(wrong, 3), labels))
    assert bad > good + 0.5


def test_dice_matches_hand_computation():
    labels = np.array([0, 1, 1, 0], "int32").reshape(1, 4, 1, 1, 1)
    logits = np.zeros((1, 4, 1, 1, 2), "float32")  # softmax 0.5 everywhere
    # per class: overlap 2*0.5=1, denominator sum(p^2)=1 + count 2 -> dice = 2*1/3
    expected = 1.0 - (2.0 / 3.0 + 1e-5 / 3.0) / (1.0 + 1e-5 / 3.0)
    assert float(LOSSES.get("Dice")(logits, labels)) == pytest.approx(expected, rel=1e-4)


def test_niftynet_loss_not_yet_available_says_so():
    with pytest.raises(NotSupportedError, match="not supported yet"):
        LOSSES.get("WGDL")
