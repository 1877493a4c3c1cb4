"""Grappler keeps its remapper on every network's training step.

TensorFlow 2.21's remapper gives up the whole graph when one of its fusions goes wrong
("remapper failed: ... fanout ... exist for missing node ..."), silently: the step then
runs with no convolution fused with its bias (or activation). Two patterns of ours did
that: a ``Pad`` read by a convolution (ResUNet's PyTorch padding and its crops'
gradient) and Keras' ``PReLU`` after a residual addition (V-Net). A step whose remapper
ran keeps a ``BiasAdd`` only after transposed convolutions, which have no fused form.
"""

import collections
import os

import numpy as np
import pytest

from niftykit.network import NETWORKS

pytestmark = pytest.mark.skipif(os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") == "0",
                                reason="the remapper fuses Conv3D with its bias only with oneDNN")


def _optimised_op_types(function, *args) -> collections.Counter:
    """How many ops of each type ``function``'s graphs hold after Grappler (run metadata)."""
    from tensorflow.python.eager import context

    context.context().enable_run_metadata()
    try:
        function(*args)
        metadata = context.context().export_run_metadata()
    finally:
        context.context().disable_run_metadata()
    return collections.Counter(node.op for graph in metadata.function_graphs
                               for node in graph.post_optimization_graph.node)


@pytest.mark.parametrize("name, kwargs, size", [
    ("resunet", dict(channels=(4, 8), strides=(2,), num_res_units=1), 8),
    ("resunet", dict(channels=(4, 8, 8), strides=(2, 2), num_res_units=2, act="prelu"), 8),
    ("vnet", dict(n_features=(4, 8), n_convs=(1, 2)), 8),
    ("unet", dict(n_features=(4, 8, 8)), 44),
    ("nonewnet", dict(n_features=(4, 8)), 16),
])
def test_training_step_keeps_the_remapper(name, kwargs, size):
    import keras
    import tensorflow as tf

    from niftykit.engine.runtime import accurate_bias_gradient

    accurate_bias_gradient(tf)
    network = NETWORKS.get(name)(num_classes=3, **kwargs)
    x = tf.constant(np.random.default_rng(0).normal(size=(1, size, size, size, 1)), tf.float32)
    network(x)

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(network(x, training=True), tf.float32) ** 2)
        return tape.gradient(loss, network.trainable_variables)

    ops = _optimised_op_types(gradients, x)
    deconvolutions = sum(isinstance(layer, keras.layers.Conv3DTranspose) and layer.use_bias
                         for layer in network._flatten_layers())
    assert ops["_FusedConv3D"] > 0
    assert ops["BiasAdd"] == deconvolutions
    assert ops["Pad"] == 0


def test_prelu_equals_keras_prelu_in_value_gradient_and_config():
    import keras
    import tensorflow as tf

    from niftykit.network.layers import PReLU

    x = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 4, 5, 6)), tf.float32)
    ours, theirs = PReLU(shared_axes=[1, 2, 3]), keras.layers.PReLU(shared_axes=[1, 2, 3])
    ours.build(x.shape)
    theirs.build(x.shape)
    alpha = np.random.default_rng(2).uniform(0.1, 0.5, size=(1, 1, 1, 6)).astype("float32")
    ours.alpha.assign(alpha)
    theirs.alpha.assign(alpha)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = ours(x), theirs(x)
        la, lb = tf.reduce_sum(a * a * a), tf.reduce_sum(b * b * b)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    for got, expected in zip(tape.gradient(la, [x, ours.alpha]), tape.gradient(lb, [x, theirs.alpha])):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5)
    clone = PReLU.from_config(ours.get_config())
    assert type(clone) is PReLU and clone.get_config() == ours.get_config()
