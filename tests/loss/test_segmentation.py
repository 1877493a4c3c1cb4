import numpy as np
import pytest
import tensorflow as tf

from niftykit.errors import NotSupportedError
from niftykit.loss import LOSSES

SEGMENTATION = ["Dice", "Dice_NS", "DiceHinge", "CrossEntropy", "DicePlusXEnt", "Focal", "GDSC",
                "GDSC_Simple", "GDSC_Uniform", "WGDL", "Tversky", "SensSpec"]
DENSE = ["Dice_Dense", "Dice_Dense_NS", "CrossEntropy_Dense"]


def _logits_for(labels: np.ndarray, classes: int, scale: float = 20.0) -> np.ndarray:
    return (np.eye(classes)[labels[..., 0]] * scale).astype("float32")


def _logits_of(probs) -> np.ndarray:
    """Logits whose softmax is ``probs`` (x, classes) -> (1, x, 1, 1, classes)."""
    probs = np.asarray(probs, "float64")
    return np.log(probs).astype("float32").reshape(1, len(probs), 1, 1, -1)


def _labels_of(classes) -> np.ndarray:
    return np.asarray(classes, "int32").reshape(1, -1, 1, 1, 1)


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 3, size=(2, 6, 6, 6, 1)).astype("int32")


@pytest.fixture
def labels_missing_class():
    """Class 2 of 3 absent from every batch element."""
    rng = np.random.default_rng(1)
    return rng.integers(0, 2, size=(2, 4, 4, 4, 1)).astype("int32")


@pytest.mark.parametrize("name", SEGMENTATION)
def test_perfect_prediction_scores_near_zero(name, labels):
    loss = float(LOSSES.get(name)(_logits_for(labels, 3), labels))
    assert loss == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("name", ["Dice", "Dice_NS", "DicePlusXEnt", "CrossEntropy", "Focal",
                                  "GDSC", "WGDL", "Tversky", "DiceHinge"])
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


def test_dice_nosquare_matches_hand_computation():
    # p = (0.8, 0.2), (0.4, 0.6); labels 0, 1
    # class 0: 2*0.8 / (1.2 + 1) = 0.727273; class 1: 2*0.6 / (0.8 + 1) = 0.666667
    loss = LOSSES.get("Dice_NS")(_logits_of([[0.8, 0.2], [0.4, 0.6]]), _labels_of([0, 1]))
    assert float(loss) == pytest.approx(1 - (1.6 / 2.2 + 1.2 / 1.8) / 2, rel=1e-4)


def test_dice_hinge_without_failing_class_is_dice():
    logits = np.zeros((1, 4, 1, 1, 2), "float32")
    labels = np.array([0, 1, 1, 0], "int32").reshape(1, 4, 1, 1, 1)
    # every class: D = 2*1 / (1 + 2) = 2/3 >= 0.1, so both hinges vanish
    assert float(LOSSES.get("DiceHinge")(logits, labels)) == pytest.approx(1 / 3, rel=1e-4)


def test_dice_hinge_penalises_low_dice():
    # p = (0.9, 0.1), (0.98, 0.02); labels 0, 1
    # class 0: D = 2*0.9 / (0.81 + 0.9604 + 1) = 0.649726
    # class 1: D = 2*0.02 / (0.01 + 0.0004 + 1) = 0.0395883
    # h1 = (0, (0.395883 - 1)^2 = 0.364958); h2 = (0, (100*0.01 - 1)^2 = 0)
    d0, d1 = 1.8 / 2.7704, 0.04 / 1.0104
    expected = 1 - (d0 + d1) / 2 + 10 * (10 * d1 - 1) ** 2 / 2
    loss = LOSSES.get("DiceHinge")(_logits_of([[0.9, 0.1], [0.98, 0.02]]), _labels_of([0, 1]))
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(2.480133, rel=1e-5)


def test_dice_hinge_penalises_a_missing_class_fully():
    # 3 classes, p = (0.45, 0.45, 0.1) at 4 voxels labelled 0, 1, 1, 0
    # classes 0, 1: D = 2*0.9 / (4*0.2025 + 2) = 0.640569; class 2: D = 0 -> h1 = h2 = 1
    probs = [[0.45, 0.45, 0.1]] * 4
    d = 1.8 / 2.81
    expected = 1 - 2 * d / 3 + 10 / 3 + 10 / 3
    loss = LOSSES.get("DiceHinge")(_logits_of(probs), _labels_of([0, 1, 1, 0]))
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_focal_matches_hand_computation():
    # p_t = 0.8 and 0.6: FL = -(0.2^2) ln 0.8 = 0.0089257, -(0.4^2) ln 0.6 = 0.0817321
    loss = LOSSES.get("Focal")(_logits_of([[0.8, 0.2], [0.4, 0.6]]), _labels_of([0, 1]))
    expected = (-(0.2 ** 2) * np.log(0.8) - (0.4 ** 2) * np.log(0.6)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(0.0453289, rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy(labels):
    logits = np.random.default_rng(2).normal(size=labels.shape[:-1] + (3,)).astype("float32")
    focal = LOSSES.get("Focal")(logits, labels, gamma=0.0)
    xent = LOSSES.get("CrossEntropy")(logits, labels)
    assert float(focal) == pytest.approx(float(xent), rel=1e-5)


def test_cross_entropy_matches_hand_computation():
    # -ln 0.8 = 0.223144, -ln 0.6 = 0.510826
    loss = LOSSES.get("CrossEntropy")(_logits_of([[0.8, 0.2], [0.4, 0.6]]), _labels_of([0, 1]))
    assert float(loss) == pytest.approx((0.223144 + 0.510826) / 2, rel=1e-5)


def test_weighted_cross_entropy_averages_per_batch_element():
    # element 0: voxels with losses 0.223144 (w 1) and 0.510826 (w 3): 1.755622 / 4 = 0.438905
    # element 1: same voxels, w 0 and 1: 0.510826; batch mean 0.474866
    logits = np.concatenate([_logits_of([[0.8, 0.2], [0.4, 0.6]])] * 2)
    labels = np.concatenate([_labels_of([0, 1])] * 2)
    weights = np.array([1, 3, 0, 1], "float32").reshape(2, 2, 1, 1, 1)
    loss = LOSSES.get("CrossEntropy")(logits, labels, weights)
    assert float(loss) == pytest.approx((0.438905 + 0.510826) / 2, rel=1e-5)


@pytest.mark.parametrize("dense, sparse", [("Dice_Dense", "Dice"), ("Dice_Dense_NS", "Dice_NS"),
                                           ("CrossEntropy_Dense", "CrossEntropy")])
def test_dense_losses_match_sparse_ones_on_one_hot_labels(dense, sparse, labels):
    logits = np.random.default_rng(3).normal(size=labels.shape[:-1] + (3,)).astype("float32")
    one_hot = np.eye(3, dtype="float32")[labels[..., 0]]
    assert float(LOSSES.get(dense)(logits, one_hot)) == pytest.approx(
        float(LOSSES.get(sparse)(logits, labels)), rel=1e-5)


@pytest.mark.parametrize("name", SEGMENTATION)
def test_unit_weights_change_nothing(name, labels):
    logits = np.random.default_rng(4).normal(size=labels.shape[:-1] + (3,)).astype("float32")
    loss = LOSSES.get(name)
    weighted = loss(logits, labels, np.ones(labels.shape, "float32"))
    assert float(weighted) == pytest.approx(float(loss(logits, labels)), rel=1e-5)


@pytest.mark.parametrize("name", ["Dice", "Dice_NS", "CrossEntropy", "Focal", "GDSC", "WGDL",
                                  "Tversky", "SensSpec", "DiceHinge"])
def test_zero_weights_drop_voxels(name, labels):
    logits = np.random.default_rng(5).normal(size=labels.shape[:-1] + (3,)).astype("float32")
    weights = np.zeros(labels.shape, "float32")
    weights[:, :3] = 1.0
    loss = LOSSES.get(name)
    kept = loss(logits[:, :3], labels[:, :3])
    assert float(loss(logits, labels, weights)) == pytest.approx(float(kept), rel=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", SEGMENTATION + DENSE)
def test_value_and_gradient_finite_with_an_empty_class(name, dtype, labels_missing_class):
    labels = labels_missing_class
    if name in DENSE:
        labels = np.eye(3, dtype="float32")[labels[..., 0]]
    raw = _logits_for(labels_missing_class, 3, scale=8.0)
    raw[..., 2] = -30.0  # class 2 absent from the prediction too
    logits = tf.Variable(tf.cast(raw, dtype))
    with tf.GradientTape() as tape:
        value = LOSSES.get(name)(logits, labels)
    gradient = tape.gradient(value, logits)
    assert value.dtype == tf.float32
    assert np.isfinite(float(value))
    assert gradient is not None
    assert np.all(np.isfinite(tf.cast(gradient, tf.float32).numpy()))


def test_cross_entropy_takes_classification_logits():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")
    # -ln(e^2/(e^2+2)) = 0.239545, -ln(1/(e+2)) = 1.551445
    for labels in (np.array([0, 2]), np.array([[0], [2]])):
        loss = LOSSES.get("CrossEntropy")(logits, labels)
        assert float(loss) == pytest.approx((0.239545 + 1.551445) / 2, rel=1e-5)


def test_niftynet_loss_not_yet_available_says_so():
    with pytest.raises(NotSupportedError, match="not supported yet"):
        LOSSES.get("VolEnforcement")


def test_cross_entropy_equals_sparse_softmax_cross_entropy_even_for_large_logits():
    import tensorflow as tf

    from niftykit.loss.segmentation import cross_entropy

    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(2, 5, 4, 3, 6)) * 40).astype(np.float32)  # exp would overflow
    labels = rng.integers(0, 6, size=(2, 5, 4, 3))
    expected = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    np.testing.assert_allclose(float(cross_entropy(logits, labels)), float(expected), rtol=1e-5)
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = cross_entropy(x, labels[..., None])
    gradient = tape.gradient(loss, x).numpy()
    reference = (tf.nn.softmax(logits).numpy() - np.eye(6)[labels]) / labels.size
    np.testing.assert_allclose(gradient, reference, atol=1e-7)


@pytest.mark.parametrize("name", ["Dice", "Dice_NS", "DiceHinge", "DicePlusXEnt"])
@pytest.mark.parametrize("label_shape", ["channel", "no_channel"])
def test_sums_without_weights_equal_the_weighted_form(name, label_shape):
    """Without weights the Dice losses take their matrix-product path (Pᵀ G); with unit
    weights the element-wise one: the same value and gradient, an absent class included."""
    loss = LOSSES.get(name)
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=(3, 6, 5, 4, 1)).astype("int32")  # class 3 of 4 absent
    if label_shape == "no_channel":
        labels = labels[..., 0]
    logits = tf.Variable((rng.normal(size=(3, 6, 5, 4, 4)) * 5).astype("float32"))
    results = []
    for weights in (None, np.ones((3, 6, 5, 4, 1), "float32")):
        with tf.GradientTape() as tape:
            value = loss(logits, labels, weights)
        results.append((float(value), tape.gradient(value, logits).numpy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-9)


def test_dice_plus_xent_matches_numpy_and_takes_any_batch_size():
    from niftykit.loss.segmentation import dice_plus_xent

    rng = np.random.default_rng(8)
    logits = (rng.normal(size=(2, 4, 4, 1, 3)) * 3).astype("float64")  # a 2-D window
    labels = rng.integers(0, 3, size=(2, 4, 4, 1, 1))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    target = np.eye(3)[labels[..., 0]]
    traced = tf.function(dice_plus_xent, input_signature=[
        tf.TensorSpec((None, 4, 4, 1, 3), tf.float32), tf.TensorSpec((None, 4, 4, 1, 1), tf.int64)])
    for batch in (1, 2):
        part = slice(0, batch)
        probs_b, target_b = probs[part], target[part]
        overlap, total = (probs_b * target_b).sum((1, 2, 3)), (probs_b + target_b).sum((1, 2, 3))
        expected = (1 - ((2 * overlap + 1e-5) / (total + 1e-5)).mean()
                    - np.mean(np.log((probs_b * target_b).sum(-1))))
        value = traced(logits[part].astype("float32"), labels[part].astype("int64"))
        assert float(value) == pytest.approx(expected, rel=1e-5)
