import numpy as np
import pytest
import tensorflow as tf

from niftykit.loss.classification import cross_entropy

LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")
# -ln(e^2 / (e^2 + 2)) = ln(1 + 2 e^-2) = 0.239545; -ln(1 / (e + 2)) = ln(e + 2) = 1.551445
LOSSES_PER_SAMPLE = (0.239545, 1.551445)


@pytest.mark.parametrize("labels", [np.array([0, 2]), np.array([[0], [2]], "int64")])
def test_cross_entropy_matches_hand_computation(labels):
    expected = np.mean(LOSSES_PER_SAMPLE)
    assert float(cross_entropy(LOGITS, labels)) == pytest.approx(expected, rel=1e-5)


def test_sample_weights_weigh_the_mean():
    # (1 * 0.239545 + 3 * 1.551445) / 4 = 1.223475
    loss = cross_entropy(LOGITS, np.array([0, 2]), np.array([1.0, 3.0]))
    assert float(loss) == pytest.approx((0.239545 + 3 * 1.551445) / 4, rel=1e-5)


def test_perfect_prediction_scores_near_zero():
    logits = np.eye(3, dtype="float32")[[2, 0, 1]] * 30
    assert float(cross_entropy(logits, np.array([2, 0, 1]))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gradient_finite_with_saturated_logits(dtype):
    logits = tf.Variable(tf.cast(np.eye(3, dtype="float32")[[2, 0]] * 100, dtype))
    with tf.GradientTape() as tape:
        value = cross_entropy(logits, np.array([2, 1]))
    gradient = tf.cast(tape.gradient(value, logits), tf.float32).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(gradient))
