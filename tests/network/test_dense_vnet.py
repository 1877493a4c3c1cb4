"""Dense V-network (Gibson et al., IEEE TMI 2018): the paper's size and every switch."""

import keras
import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error
from niftykit.network.dense_blocks import DenseFeatureStack as _DenseFeatureStack
from niftykit.network.dense_vnet import DenseVNet

TINY = dict(n_initial_conv_channels=4, n_dense_channels=[4, 4], n_seg_channels=[3, 4],
            n_down_channels=[4, None], dilation_rates=[[1, 1, 1], [1]], prior_size=4)


def _expected_parameters(c_in=1, classes=9, init=24, growth=(4, 8, 16), layers=(5, 10, 10),
                         seg=(12, 24, 24), down=(24, 24), prior=12):
    """The count derived by hand from the architecture (module docstring table)."""
    weights = 125 * c_in * init                 # initial 5³ conv, no bias
    norms = 2 * c_in + 2 * init                 # BN of the pooled input and of the initial conv
    channels = c_in + init
    for i, (g, n, s) in enumerate(zip(growth, layers, seg)):
        weights += sum(27 * (channels + j * g) * g for j in range(n))
        norms += 2 * g * n
        channels += n * g
        weights += 27 * channels * s
        norms += 2 * s
        if i < len(down):
            weights += 27 * channels * down[i]
            norms += 2 * down[i]
            channels = down[i]
    weights += 27 * (c_in + sum(seg)) * classes + classes   # segmentation conv with bias
    return weights + norms + prior ** 3 * classes, norms   # moving mean/variance: as many as norms


def test_paper_configuration_parameter_count_and_output_shape():
    assert NETWORKS.get("dense_vnet") is DenseVNet
    model = DenseVNet(num_classes=9)
    config = model.get_config()
    assert config["n_dense_channels"] == [4, 8, 16]
    assert [len(r) for r in config["dilation_rates"]] == [5, 10, 10]
    assert config["n_seg_channels"] == [12, 24, 24] and config["n_initial_conv_channels"] == 24
    assert config["use_bdo"] and config["use_prior"] and config["bdo_keep_prob"] == 0.5

    logits = model(keras.Input((144, 144, 144, 1)))
    assert tuple(logits.shape) == (None, 144, 144, 144, 9)
    assert logits.dtype == "float32"
    trainable, moving = _expected_parameters()
    assert trainable == 894_066 and moving == 786     # the docstring's hand count
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == trainable
    assert model.count_params() == trainable + moving


def _tiny(**params):
    return DenseVNet(num_classes=3, **{**TINY, **params})


def _x(shape=(2, 8, 8, 8, 1), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_prior_adds_its_variable_and_its_log_to_the_logits():
    keras.utils.set_random_seed(0)
    with_prior = _tiny()
    keras.utils.set_random_seed(0)
    without = _tiny(use_prior=False)
    x = _x()
    base = np.asarray(without(x))
    np.testing.assert_allclose(np.asarray(with_prior(x)), base, atol=1e-5)   # prior starts at 1
    assert with_prior.count_params() - without.count_params() == 4 ** 3 * 3
    prior = np.ones((4, 4, 4, 3), "float32")
    prior[..., 1] = np.e ** 2
    with_prior.prior.prior.assign(prior)
    delta = np.asarray(with_prior(x)) - base
    np.testing.assert_allclose(delta, np.broadcast_to([0.0, 2.0, 0.0], delta.shape), atol=1e-4)


def _stack(growth=4, rates=(1, 1, 1), norm="batch", activation="relu", use_bdo=False,
           memory_efficient=False, init="he_normal", name="stack"):
    kwargs = dict(kernel_initializer=keras.initializers.get(init), kernel_regularizer=None,
                  bias_initializer=keras.initializers.get("zeros"))
    return _DenseFeatureStack(growth, list(rates), 2, None, (3, 3, 3), norm, activation, True,
                              use_bdo, 0.5, memory_efficient, kwargs, name=name)


def test_dilation_rates_reach_the_convolutions():
    model = _tiny(dilation_rates=[[1, 2, 3], [4]])
    assert model.stacks[0].dilations == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert model.stacks[1].dilations == [(4, 4, 4)]
    flat = _tiny(dilation_rates=[[2, 1, 1], [1]], spatial_rank=2)
    assert flat.stacks[0].dilations[0] == (2, 2, 1)

    stack = _stack(growth=1, rates=[3], norm="none", init="ones")
    impulse = np.zeros((1, 15, 15, 15, 1), "float32")
    impulse[0, 7, 7, 7, 0] = 1.0
    response = np.asarray(stack.feature_stack(impulse))[0, ..., 1]
    hits = {tuple(int(v) - 7 for v in p) for p in np.argwhere(response > 0)}
    assert hits == {(a, b, c) for a in (-3, 0, 3) for b in (-3, 0, 3) for c in (-3, 0, 3)}


@pytest.mark.parametrize("norm", ["batch", "group"])   # kept channels only / full layer masked
def test_batchwise_dropout_drops_whole_channels_for_the_whole_batch(norm):
    keras.utils.set_random_seed(1)
    bdo = _stack(norm=norm, use_bdo=True)
    plain = _stack(norm=norm, name="plain")
    x = _x((3, 8, 8, 8, 5))
    bdo.feature_stack(x)
    plain.feature_stack(x)
    plain.set_weights(bdo.get_weights())
    np.testing.assert_allclose(np.asarray(bdo.feature_stack(x, training=False)),   # identity
                               np.asarray(plain.feature_stack(x, training=False)), atol=1e-5)

    features = np.asarray(bdo.feature_stack(x, training=True))
    for layer, kept in enumerate([2, 2, 4]):             # no dropout on the stack's last layer
        block = features[..., 5 + 4 * layer:9 + 4 * layer]
        alive = np.abs(block).reshape(-1, 4).max(axis=0) > 0
        assert alive.sum() == kept
        per_element = np.abs(block).reshape(3, -1, 4).max(axis=1) > 0
        assert (per_element == alive).all()             # the same channels in every batch element
    first = features[..., 5:9]
    reference = np.asarray(plain.feature_stack(x, training=True))[..., 5:9]
    kept = np.abs(first).reshape(-1, 4).max(axis=0) > 0
    np.testing.assert_allclose(first[..., kept], 2.0 * reference[..., kept], rtol=1e-4, atol=1e-4)
    if norm == "batch":   # statistics updated for the computed channels only
        moving = np.asarray(bdo.norms[0].moving_mean)
        assert (moving[~kept] == 0).all() and (moving[kept] != 0).all()


def test_batchwise_dropout_is_the_identity_in_inference_only():
    keras.utils.set_random_seed(0)
    bdo = _tiny()
    keras.utils.set_random_seed(0)
    plain = _tiny(use_bdo=False)
    x = _x()
    np.testing.assert_allclose(np.asarray(bdo(x)), np.asarray(plain(x)), atol=1e-5)
    assert not np.allclose(np.asarray(bdo(x, training=True)), np.asarray(plain(x, training=True)))


def _loss_and_grads(model, x):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.reduce_mean(tf.square(logits))
    return logits.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("use_bdo", [False, True])
def test_memory_efficient_gives_the_same_outputs_and_gradients(use_bdo, monkeypatch):
    calls = []
    remat = keras.remat
    monkeypatch.setattr(keras, "remat", lambda f: calls.append(f) or remat(f))
    x = _x()
    results = []
    for efficient in (False, True):
        keras.utils.set_random_seed(3)
        model = _tiny(use_bdo=use_bdo, memory_efficient=efficient)
        results.append(_loss_and_grads(model, x))
        assert bool(calls) == efficient and len(calls) % 5 == 0   # 2 dense layers, skip, down; skip
    (out_a, grads_a), (out_b, grads_b) = results
    np.testing.assert_allclose(out_a, out_b, rtol=1e-5, atol=1e-5)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_coordinates_add_input_channels():
    model = _tiny(use_coords=True)
    model(_x())
    assert model.initial_conv.kernel.shape[-2] == 1 + 3
    coords = np.asarray(model._coordinates(np.zeros((1, 3, 4, 5, 1), "float32")))
    np.testing.assert_allclose(coords[0, :, 0, 0, 0], [-1, 0, 1])
    np.testing.assert_allclose(coords[0, 0, 0, :, 2], [-1, -0.5, 0, 0.5, 1])
    flat = _tiny(use_coords=True, spatial_rank=2)
    assert tuple(flat(_x((1, 8, 8, 1, 2))).shape) == (1, 8, 8, 1, 3)
    assert flat.initial_conv.kernel.shape[-2] == 2 + 2
    assert tuple(flat.prior.prior.shape) == (4, 4, 1, 3)


def test_plain_chain_and_pooled_input_switches():
    dense, plain = _tiny(), _tiny(use_dense_connections=False, use_pooled_input=False)
    x = _x()
    dense(x), plain(x)
    assert dense.stacks[0].out_channels == 1 + 4 + 3 * 4 and plain.stacks[0].out_channels == 4
    assert plain.count_params() < dense.count_params()
    assert not hasattr(plain, "input_pool")


def test_mixed_bfloat16_gives_float32_logits_and_sane_gradients():
    keras.utils.set_random_seed(0)
    reference = _loss_and_grads(_tiny(use_bdo=False), _x())[1]
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = _tiny(use_bdo=False)
        assert model(_x()).dtype == "float32"
        logits, grads = _loss_and_grads(model, _x())   # 8³ window: 2³ at the bottom
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    for low, high in zip(grads, reference):   # bfloat16 noise only
        assert np.isfinite(low).all() and np.abs(low).max() <= 2 * np.abs(high).max() + 1e-3


def test_bfloat16_convolutions_smaller_than_their_kernel_have_right_gradients():
    import tensorflow as tf
    x = _x((2, 2, 2, 2, 8))   # TensorFlow's bfloat16 Conv3D filter gradient fails on 2³ < 3³
    grads = []
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            stack = _stack(growth=3, rates=[1], norm="none")
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.cast(stack(x)[0], "float32")))
            grads.append(tape.gradient(loss, stack.units[0][0]).numpy())
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
    np.testing.assert_allclose(grads[1], grads[0], atol=0.03 * np.abs(grads[0]).max())


def test_window_contract_and_bad_parameters():
    assert DenseVNet.window_divisor({}) == 8
    assert DenseVNet.window_divisor({"n_dense_channels": [4, 8]}) == 4
    assert window_error(DenseVNet, (144, 144, 144), {}) is None
    assert "x=20 (try 16 or 24)" in window_error(DenseVNet, (20, 16, 16), {})
    with pytest.raises(ValueError, match="dilation_rates needs one entry"):
        DenseVNet(num_classes=2, dilation_rates=[[1], [1]])
    with pytest.raises(ValueError, match="n_down_channels"):
        DenseVNet(num_classes=2, n_down_channels=[24])
    with pytest.raises(ValueError, match="bdo_keep_prob"):
        DenseVNet(num_classes=2, bdo_keep_prob=0.0)
