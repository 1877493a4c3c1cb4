import numpy as np
import pytest

from niftykit.loss import LOSSES


def _logits_of(probs) -> np.ndarray:
    probs = np.asarray(probs, "float64")
    return np.log(probs).astype("float32").reshape(1, len(probs), 1, 1, -1)


def _labels_of(classes) -> np.ndarray:
    return np.asarray(classes, "int32").reshape(1, -1, 1, 1, 1)


LOGITS = _logits_of([[0.8, 0.2], [0.4, 0.6]])
LABELS = _labels_of([0, 1])


def test_tversky_pools_classes_as_niftynet():
    # TP = 0.8 + 0.6 = 1.4; FP = FN = 0.2 + 0.4 = 0.6 -> T = 1.4 / (1.4 + 0.3 + 0.3) = 0.7
    assert float(LOSSES.get("Tversky")(LOGITS, LABELS)) == pytest.approx(0.3, rel=1e-4)


def test_tversky_per_class_weighs_fp_and_fn():
    # alpha = 0.3 (FP), beta = 0.7 (FN)
    # class 0: TP 0.8, FP 0.4, FN 0.2 -> 0.8 / (0.8 + 0.12 + 0.14) = 0.754717
    # class 1: TP 0.6, FP 0.2, FN 0.4 -> 0.6 / (0.6 + 0.06 + 0.28) = 0.638298
    loss = LOSSES.get("Tversky")(LOGITS, LABELS, alpha=0.3, beta=0.7, per_class=True)
    assert float(loss) == pytest.approx(1 - (0.8 / 1.06 + 0.6 / 0.94) / 2, rel=1e-4)


def test_sensspec_matches_hand_computation():
    # 3 classes, p = (0.7, 0.2, 0.1), (0.2, 0.5, 0.3); labels 0, 1; r = 0.05
    # class 0: inside (1-0.7)^2 = 0.09, outside 0.2^2 = 0.04
    # class 1: inside (1-0.5)^2 = 0.25, outside 0.2^2 = 0.04
    # class 2: inside 0 (empty), outside (0.1^2 + 0.3^2) / 2 = 0.05
    # 0.05 * 0.34 + 0.95 * 0.13 = 0.1405
    logits = _logits_of([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    assert float(LOSSES.get("SensSpec")(logits, LABELS)) == pytest.approx(0.1405, rel=1e-4)


def test_sensspec_r_weighs_the_in_class_errors():
    # r = 1 keeps the inside terms only: 0.09 + 0.25 + 0
    logits = _logits_of([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    assert float(LOSSES.get("SensSpec")(logits, LABELS, r=1.0)) == pytest.approx(0.34, rel=1e-4)
