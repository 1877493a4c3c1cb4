"""niftykit's BatchNorm computes Keras' BatchNormalization with a written-out gradient."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from niftykit.network.layers import BatchNorm, norm_layer  # noqa: E402


def _run(cls, shape, policy, training, **kwargs):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, shape).astype("float32"))
    upstream = tf.constant(rng.normal(0.0, 1.0, shape).astype("float32"))
    keras.utils.set_random_seed(1)
    layer = cls(momentum=0.9, dtype=policy, gamma_initializer="random_normal",
                beta_initializer="random_normal", **kwargs)
    layer.build(shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
    weights = [w for w in (layer.gamma, layer.beta) if w is not None]
    grads = tape.gradient(loss, [x] + weights)
    return [np.asarray(tf.cast(t, tf.float32)) for t in [y, *grads]] + \
        [layer.moving_mean.numpy(), layer.moving_variance.numpy()]


@pytest.mark.parametrize("shape", [(2, 5, 6, 7, 3), (3, 8, 8, 4), (4, 9, 2)])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("training", [True, False])
def test_same_outputs_gradients_and_moving_averages_as_keras(shape, policy, training):
    ours = _run(BatchNorm, shape, policy, training)
    theirs = _run(keras.layers.BatchNormalization, shape, policy, training)
    names = ["output", "d/dx", "d/dgamma", "d/dbeta", "moving mean", "moving variance"]
    for name, a, b in zip(names, ours, theirs):
        tol = 1e-2 if policy == "mixed_bfloat16" and name in ("output", "d/dx") else 1e-4
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=name)


def test_gradient_matches_finite_differences():
    """Independent of Keras: the written-out d/dx against central differences."""
    rng = np.random.default_rng(3)
    x0 = rng.normal(0.5, 2.0, (2, 3, 4, 3)).astype("float64")
    upstream = rng.normal(size=x0.shape)
    layer = BatchNorm(gamma_initializer="random_normal", beta_initializer="random_normal")
    layer.build(x0.shape)

    def loss(x):
        return float(tf.reduce_sum(tf.cast(layer(tf.constant(x, tf.float32), training=True),
                                           tf.float64) * upstream))

    x = tf.constant(x0, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float64) * upstream)
    analytic = tape.gradient(value, x).numpy()
    h = 1e-2
    for index in [(0, 0, 0, 0), (1, 2, 3, 1), (0, 1, 2, 2), (1, 0, 1, 0)]:
        plus, minus = x0.copy(), x0.copy()
        plus[index] += h
        minus[index] -= h
        numeric = (loss(plus) - loss(minus)) / (2 * h)
        assert analytic[index] == pytest.approx(numeric, rel=2e-2, abs=2e-3)


def test_without_scale_and_centre_and_frozen_layer():
    ours = _run(BatchNorm, (2, 4, 4, 4, 3), "float32", True, scale=False, center=False)
    theirs = _run(keras.layers.BatchNormalization, (2, 4, 4, 4, 3), "float32", True,
                  scale=False, center=False)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    layer = BatchNorm()
    layer.build((2, 4, 4, 4, 3))
    layer.trainable = False  # vars_to_freeze: normalises with the moving averages
    x = tf.ones((2, 4, 4, 4, 3)) * 5.0
    np.testing.assert_allclose(layer(x, training=True).numpy(),
                               5.0 / np.sqrt(1.0 + layer.epsilon), rtol=1e-5)


def test_serialises_and_is_a_keras_batch_norm(tmp_path):
    layer = norm_layer("batch", 4, "bn")
    assert isinstance(layer, BatchNorm) and isinstance(layer, keras.layers.BatchNormalization)
    inputs = keras.Input((6, 6, 6, 4))
    model = keras.Model(inputs, layer(inputs))
    model.layers[-1].moving_mean.assign(np.arange(4, dtype="float32"))
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.layers[-1]) is BatchNorm
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 6, 4)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
