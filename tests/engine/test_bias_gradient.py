"""The gradient of a bias sums in float32 (TensorFlow's CPU kernel sums bfloat16 in bfloat16)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from niftykit.engine.distribute import replica_steps  # noqa: E402
from niftykit.engine.runtime import accurate_bias_gradient, precision_policy  # noqa: E402


def _bias_grad(dtype, data_format="NHWC", shape=(2, 32, 32, 32, 4), value=0.3):
    """Gradient of sum(upstream * bias_add(x, b)) with respect to b, upstream = value."""
    x = tf.zeros(shape, dtype)
    channels = shape[1] if data_format == "NCHW" else shape[-1]
    b = tf.zeros([channels], dtype)
    with tf.GradientTape() as tape:
        tape.watch(b)
        y = tf.nn.bias_add(x, b, data_format=data_format)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * value)
    return tf.cast(tape.gradient(loss, b), tf.float64).numpy()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_bias_gradient_is_the_sum_of_the_upstream_gradient(dtype, data_format):
    assert accurate_bias_gradient(tf)
    shape = (2, 32, 32, 32, 4) if data_format == "NHWC" else (2, 4, 32, 32, 32)
    grad = _bias_grad(getattr(tf, dtype), data_format, shape)
    expected = 0.3 * 2 * 32 ** 3  # 19,660.8 per channel
    # one rounding to the dtype at the end (bfloat16: 8 significant bits, 0.4 %);
    # summed in bfloat16 the sum stops growing near 256 × 0.3 per ulp step: about 2,300
    rtol = {"bfloat16": 8e-3, "float16": 1e-3, "float32": 1e-4}[dtype]
    np.testing.assert_allclose(grad, expected, rtol=rtol)


def test_second_derivative_through_the_bias_gradient():
    accurate_bias_gradient(tf)
    b = tf.Variable([0.5, -1.0])
    x = tf.ones((3, 4, 2))
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            y = tf.nn.bias_add(x, b)
            loss = tf.reduce_sum(y ** 2)
        g = inner.gradient(loss, b)  # 2 * sum(y) = 2 * 12 * (1 + b)
        gg = tf.reduce_sum(g ** 2)
    np.testing.assert_allclose(g.numpy(), [36.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(outer.gradient(gg, b).numpy(), [2 * 36.0 * 24.0, 0.0], atol=1e-3)


@pytest.fixture
def stock_bias_gradient():
    """TensorFlow's own BiasAdd gradient in the registry during the test, the accurate one after."""
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import nn_grad

    entry = tf_ops._gradient_registry._registry["BiasAdd"]
    entry["type"] = nn_grad._BiasAddGrad
    yield
    accurate_bias_gradient(tf)


def test_training_step_under_mixed_bfloat16_moves_a_bias_by_its_true_gradient(stock_bias_gradient):
    """The engine's step (replica_steps) installs the accurate gradient: one SGD step of lr 1e-6
    on a convolution whose loss is 0.3 × the sum of its output moves each bias by
    -lr × 0.3 × 2 × 24³ (TensorFlow's kernel alone: by 0.3 × 256 or so)."""
    with precision_policy("mixed_bfloat16"):
        inputs = keras.Input((24, 24, 24, 1))
        conv = keras.layers.Conv3D(3, 3, padding="same", kernel_initializer="zeros", name="conv")
        model = keras.Model(inputs, conv(inputs))
    optimiser = keras.optimizers.SGD(1e-6)
    optimiser.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    train_step, _ = replica_steps(
        lambda outputs, batch: 0.3 * tf.reduce_sum(tf.cast(outputs, tf.float32)),
        model, optimiser, model.trainable_variables, strategy, 0.0, tf)
    before = conv.bias.numpy().copy()
    train_step({"image": tf.ones((2, 24, 24, 24, 1))})
    moved = (before - conv.bias.numpy()) / 1e-6
    np.testing.assert_allclose(moved, 0.3 * 2 * 24 ** 3, rtol=1e-2)
