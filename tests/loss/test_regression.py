import numpy as np
import pytest
import tensorflow as tf

from niftykit.loss import LOSSES

REGRESSION = ["L1Loss", "L2Loss", "RMSE", "MAE", "Huber", "SmoothL1", "Cosine"]

# one batch element, 4 voxels, 1 channel: residuals r = (0, 1, 2, 4)
PREDICTION = np.array([1, 2, 3, 5], "float32").reshape(1, 4, 1, 1, 1)
TARGET = np.ones((1, 4, 1, 1, 1), "float32")


@pytest.mark.parametrize("name, expected", [
    ("L1Loss", (0 + 1 + 2 + 4) / 4),                    # 1.75
    ("MAE", (0 + 1 + 2 + 4) / 4),
    ("L2Loss", (0 + 1 + 4 + 16) / 2),                   # sum of squares / 2 = 10.5
    ("RMSE", np.sqrt((0 + 1 + 4 + 16) / 4)),            # sqrt(5.25) = 2.291288
    ("Huber", (0 + 0.5 + (2 - 0.5) + (4 - 0.5)) / 4),   # 1.375
    # t = 0.5, T = 2: 0 -> 0; 1 -> 1 - 0.375 = 0.625; 2 -> 1.625; 4 -> 3.625 > 2 -> 3.625^2 - 2
    ("SmoothL1", (0 + 0.625 + 1.625 + (3.625 ** 2 - 2)) / 4),  # 3.34765625
])
def test_matches_hand_computation(name, expected):
    assert float(LOSSES.get(name)(PREDICTION, TARGET)) == pytest.approx(expected, rel=1e-5)


def test_smooth_l1_is_quadratic_below_threshold():
    # |r| = 0.2 < 0.5: 0.5 * 0.2^2 = 0.02
    loss = LOSSES.get("SmoothL1")(np.full((1, 1), 1.2, "float32"), np.ones((1, 1), "float32"))
    assert float(loss) == pytest.approx(0.02, rel=1e-5)


def test_losses_are_per_batch_element_then_averaged():
    # element 0: r = (0, 1, 2, 4); element 1: r = (1, 1, 1, 1)
    prediction = np.concatenate([PREDICTION, TARGET + 1])
    target = np.concatenate([TARGET, TARGET])
    # L2: (10.5 + 4/2) / 2 = 6.25; RMSE: (sqrt(5.25) + 1) / 2
    assert float(LOSSES.get("L2Loss")(prediction, target)) == pytest.approx(6.25, rel=1e-5)
    assert float(LOSSES.get("RMSE")(prediction, target)) == pytest.approx((np.sqrt(5.25) + 1) / 2,
                                                                          rel=1e-5)


@pytest.mark.parametrize("name, expected", [
    ("L1Loss", (0 + 1) / 2),          # weights (1, 1, 0, 0) keep r = 0, 1
    ("RMSE", np.sqrt((0 + 1) / 2)),
    ("L2Loss", (0 + 1) / 2),          # weighted sum of squares / 2
    ("Huber", (0 + 0.5) / 2),
])
def test_weights_select_voxels(name, expected):
    weights = np.array([1, 1, 0, 0], "float32").reshape(1, 4, 1, 1, 1)
    assert float(LOSSES.get(name)(PREDICTION, TARGET, weights)) == pytest.approx(expected, rel=1e-5)


def test_cosine_matches_hand_computation():
    # voxel 0: (1,0,0) vs (0,1,0): already unit, cos 0 -> 1
    # voxel 1: (0.6,0,0) vs (0,0.6,0) completed with 0.8: cos = 0.64 -> 0.36
    prediction = np.array([[1, 0, 0], [0.6, 0, 0]], "float32").reshape(1, 2, 1, 1, 3)
    target = np.array([[0, 1, 0], [0, 0.6, 0]], "float32").reshape(1, 2, 1, 1, 3)
    cosine = LOSSES.get("Cosine")
    assert float(cosine(prediction, target)) == pytest.approx((1 + 0.36) / 2, rel=1e-5)
    assert float(cosine(prediction, target, complete=False)) == pytest.approx(1.0, rel=1e-5)
    weights = np.array([0, 1], "float32").reshape(1, 2, 1, 1, 1)
    assert float(cosine(prediction, target, weights)) == pytest.approx(0.36, rel=1e-5)


@pytest.mark.parametrize("name", REGRESSION)
def test_perfect_prediction_scores_near_zero(name):
    values = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, 3, 3, 3, 3)).astype("float32")
    assert float(LOSSES.get(name)(values, values)) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", REGRESSION)
def test_gradient_finite_at_perfect_prediction_and_zero_vectors(name, dtype):
    values = np.random.default_rng(0).uniform(-2, 2, size=(2, 3, 3, 3, 3)).astype("float32")
    values[0, 0] = 0.0  # zero vectors for Cosine
    prediction = tf.Variable(tf.cast(values, dtype))
    with tf.GradientTape() as tape:
        value = LOSSES.get(name)(prediction, tf.cast(values, dtype))
    gradient = tf.cast(tape.gradient(value, prediction), tf.float32).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(gradient))


def test_cosine_gradient_finite_for_zero_vectors_without_completion():
    prediction = tf.Variable(np.zeros((1, 2, 1, 1, 3), "float32"))
    target = np.array([[1, 0, 0], [0, 0, 0]], "float32").reshape(1, 2, 1, 1, 3)
    with tf.GradientTape() as tape:
        value = LOSSES.get("Cosine")(prediction, target, complete=False)
    assert float(value) == pytest.approx(1.0)  # a zero vector is orthogonal to everything
    assert np.all(np.isfinite(tape.gradient(value, prediction).numpy()))
