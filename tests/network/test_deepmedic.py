import numpy as np
import pytest

from niftykit.network import NETWORKS, nearest_valid, window_error, window_output
from niftykit.network.deepmedic import DeepMedic

TINY = dict(conv_features=[2, 2, 2, 2], fc_features=[4], dropout_rate=0.0)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_default_network_maps_57_to_9_with_the_hand_counted_parameters():
    """Kamnitsas et al. 2017: 8 convs (30,30,40,40,40,40,50,50) per pathway, FC 150, 150."""
    c = 5
    model = DeepMedic(num_classes=c)
    assert model(np.zeros((1, 57, 57, 57, 1), "float32")).shape == (1, 9, 9, 9, c)
    chans = [1, 30, 30, 40, 40, 40, 40, 50, 50]
    pathway = sum(27 * a * b for a, b in zip(chans[:-1], chans[1:]))  # no bias before BN
    assert pathway == 308_610
    fc = 100 * 150 + 150 * 150
    norm_channels = 2 * sum(chans[1:]) + 150 + 150
    prelu = norm_channels                  # one slope per channel (shared over space)
    classifier = 150 * c + c
    assert _trainable(model) == 2 * pathway + fc + 2 * norm_channels + prelu + classifier
    assert model.count_params() == _trainable(model) + 2 * norm_channels
    assert model.get_config()["activation"] == "prelu"


def test_output_sizes():
    assert DeepMedic.output_size(57, {}) == 9       # NiftyNet's training window
    assert DeepMedic.output_size(105, {}) == 57     # NiftyNet's inference window
    assert DeepMedic.output_size(51, {}) == 3       # the smallest
    assert DeepMedic.output_size(60, {}) == 12      # even windows are fine
    for bad in (48, 50, 56, 58):
        assert DeepMedic.output_size(bad, {}) is None
    assert DeepMedic.output_size(85, {"d_factor": 5}) == 5
    assert DeepMedic.output_size(57, {"d_factor": 2}) is None
    assert DeepMedic.output_size(27, TINY) == 3 and DeepMedic.output_size(24, TINY) is None
    assert window_output(DeepMedic, (57, 60, 1), {}) == (9, 12, 1)


def test_window_error_names_the_nearest_valid_sizes():
    assert window_error(DeepMedic, (57, 57, 57), {}) is None
    message = window_error(DeepMedic, (58, 57, 45), {})
    assert "divisible by 3 (d_factor), at least 51" in message
    assert "x=58 (try 57 or 60)" in message and "z=45 (try 51)" in message
    assert nearest_valid(DeepMedic, 20, TINY) == [27]
    assert "odd d_factor" in window_error(DeepMedic, (57, 57, 57), {"d_factor": 4})
    assert NETWORKS.get("deepmedic") is DeepMedic


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        DeepMedic(num_classes=2, d_factor=2)
    with pytest.raises(ValueError, match="from 3 to 8"):
        DeepMedic(num_classes=2, residual_layers=[2])
    with pytest.raises(ValueError, match="fewer"):
        DeepMedic(num_classes=2, conv_features=[8, 8, 4], residual_layers=[3])
    with pytest.raises(ValueError, match="divisible by 3"):
        DeepMedic(num_classes=2, **TINY)(np.zeros((1, 28, 27, 27, 1), "float32"))


def test_residual_connections_are_added_without_parameters():
    plain = DeepMedic(num_classes=2, conv_features=[4, 4, 6, 6, 8], fc_features=[4])
    residual = DeepMedic(num_classes=2, conv_features=[4, 4, 6, 6, 8], fc_features=[4],
                         residual_layers=[4, 5])
    x = np.zeros((1, 33, 33, 33, 1), "float32")
    assert plain(x).shape == residual(x).shape == (1, 3, 3, 3, 2)
    adds = [layer.name for layer in residual.layers if layer.name.endswith("_res_add")]
    assert adds == ["normal4_res_add", "normal5_res_add", "subsampled4_res_add",
                    "subsampled5_res_add"]
    assert residual.count_params() == plain.count_params()


def _support(model, x, j):
    """Input voxels along x that output voxel (j, 0) depends on (2-D window)."""
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)[0, j, 0, 0, 0]
    grad = np.abs(np.asarray(tape.gradient(y, x)))[0].sum(axis=(1, 2, 3))
    return list(np.flatnonzero(grad > 0))


def test_receptive_fields_of_both_pathways():
    """L = 8 voxels lost, d = 3, window 33 -> 9: output j sees normal voxels j+8..j+16 and,
    with j = 3m + r, subsampled voxels 3m..3m+26."""
    model = DeepMedic(num_classes=2, norm="none", activation="tanh", spatial_rank=2, **TINY)
    x = np.random.default_rng(0).normal(size=(1, 33, 27, 1, 1)).astype("float32")
    assert model(x).shape == (1, 9, 3, 1, 2)
    assert _support(model, x, 0) == list(range(0, 27))
    assert _support(model, x, 8) == list(range(6, 33))
    kernel = model.get_layer("subsampled1_conv").kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))  # leaves the normal pathway alone
    for j in (0, 4, 8):
        assert _support(model, x, j) == list(range(j + 8, j + 17))


def test_2d_windows_save_and_reload(check_network):
    kwargs = dict(num_classes=3, spatial_rank=2, residual_layers=[3], **TINY)
    model = check_network(DeepMedic, kwargs, (1, 27, 30, 1, 2), (1, 3, 6, 1, 3))
    assert model.get_layer("normal_crop").cropping == ((8, 8), (8, 8), (0, 0))
    assert model.get_layer("subsampled_pool").pool_size == (3, 3, 1)


def test_mixed_precision_gives_float32_logits():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = DeepMedic(num_classes=2, residual_layers=[3], **TINY)
        y = model(np.ones((1, 27, 27, 27, 1), "float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert y.dtype == "float32" and model.get_layer("normal1_conv").compute_dtype == "float16"


def test_batch_norm_moving_averages_use_niftynets_momentum():
    """0.9 (NiftyNet's moving_decay): Keras' 0.99 left DeepMedic's inference averages so far
    behind after a few hundred iterations that a class vanished at inference."""
    from niftykit.network.layers import norm_layer

    assert norm_layer("batch", 8, "bn").momentum == 0.9
