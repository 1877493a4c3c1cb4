"""U-Net family and V-Net (issue 5): valid-padding window arithmetic against the papers,
centre-aligned crop-concat, No New-Net's and V-Net's defining layers."""

import numpy as np
import pytest

from niftykit.network import window_error, window_output
from niftykit.network.nonewnet import LinearUpsampling, NoNewNet
from niftykit.network.unet import UNet3D, centre_crop
from niftykit.network.unet_2d import UNet2D
from niftykit.network.vnet import VNet

CICEK = dict(n_features=[32, 64, 128, 256], padding="valid")  # four levels, two 3x3x3 convs each


def _layers(model, kind=None):
    """Every layer of ``model`` (of class ``kind`` if given)."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    return [layer for layer in layers if kind is None or isinstance(layer, kind)]


# -- valid padding: sizes ------------------------------------------------------------

def test_cicek_window_gives_paper_output():
    # Çiçek 2016: 132x132x116 -> 44x44x28 (132-4=128 /2 64-4=60 /2 30-4=26 /2 13-4=9, back up x2-4)
    assert UNet3D.output_size(132, CICEK) == 44
    assert UNet3D.output_size(116, CICEK) == 28
    assert window_output(UNet3D, (132, 132, 116), CICEK) == (44, 44, 28)
    assert window_error(UNet3D, (132, 132, 116), CICEK) is None


def test_ronneberger_tile_gives_paper_output():
    # Ronneberger 2015: 572 -> 568 -> 284 -> 280 -> 140 -> 136 -> 68 -> 64 -> 32 -> 28 -> ... -> 388
    assert UNet2D.output_size(572, {}) == 388
    assert window_output(UNet2D, (572, 572, 1), {}) == (388, 388, 1)
    assert UNet2D.window_minimum({}) == 188 and UNet2D.output_size(188, {}) == 4
    assert UNet2D.output_size(576, {"padding": "same"}) == 576  # same: divisible by 16
    assert UNet2D.output_size(572, {"padding": "same"}) is None


def test_valid_rule_matches_closed_form():
    # four levels, 4 voxels lost per level: accepted s = 60 + 8k, output s - 88, at least 1 voxel
    for size in range(2, 300):
        expected = size - 88 if size >= 92 and (size - 60) % 8 == 0 else None
        assert UNet3D.output_size(size, CICEK) == expected, size
    assert UNet3D.window_minimum(CICEK) == 92
    assert UNet3D.output_size(132, {**CICEK, "padding": "VALID"}) == 44  # NiftyNet's spelling
    assert UNet3D.window_divisor({"n_features": [4, 8, 16]}) == 4  # same padding unchanged


def test_valid_window_error_names_nearest_sizes():
    message = window_error(UNet3D, (130, 132, 115), CICEK)
    assert "(size - 60) divisible by 8, at least 92" in message
    assert "88 voxels smaller" in message
    assert "x=130 (try 124 or 132)" in message and "z=115 (try 108 or 116)" in message
    assert "[132, 132, 116]" in message
    assert "x=80 (try 92)" in window_error(UNet3D, (80, 132, 116), CICEK)
    assert "x=570 (try 556 or 572)" in window_error(UNet2D, (570, 572, 1), {})


def test_valid_unet_shapes_config_and_save(check_network):
    params = dict(num_classes=2, n_features=[2, 4], padding="valid", norm="none")
    assert window_output(UNet3D, (20, 22, 24), params) == (4, 6, 8)
    check_network(UNet3D, params, (1, 20, 22, 24, 1), (1, 4, 6, 8, 2))


def test_unet_2d_is_two_dimensional(check_network):
    check_network(UNet2D, dict(num_classes=2, n_features=[2, 4], dropout=0.5, norm="batch"),
                  (1, 22, 20, 1, 1), (1, 6, 4, 1, 2))
    with pytest.raises(ValueError, match="spatial_rank must be 2"):
        UNet2D(num_classes=2, spatial_rank=3)
    with pytest.raises(ValueError, match="z=4"):
        UNet2D(num_classes=2, n_features=[2, 4])(np.zeros((1, 20, 20, 4, 1), "float32"))
    assert UNet2D(num_classes=2).get_config()["n_features"] == [64, 128, 256, 512, 1024]


# -- valid padding: crop-concat aligns centres -----------------------------------------

def test_centre_crop_takes_the_middle():
    x = np.arange(8 * 6 * 4, dtype="float32").reshape(1, 8, 6, 4, 1)
    out = np.asarray(centre_crop(x, np.zeros((1, 4, 2, 4, 3), "float32")))
    np.testing.assert_array_equal(out, x[:, 2:6, 2:4, :, :])


def _delta(kernel, source=None):
    """A kernel that copies input channel ``source`` (all channels if None) at its centre tap."""
    k = np.zeros(kernel.shape, "float32")
    centre = tuple(s // 2 for s in kernel.shape[:3])
    for c in range(kernel.shape[3]):
        if source is None or c == source:
            k[centre + (c, 0)] = 1.0
    return k


def test_valid_crop_concat_is_centred():
    # The shallowest skip alone reaches the output (identity convolutions, zero up-convolutions),
    # so output voxel j must be the input voxel j + border/2 -- the window's centre lines up.
    model = UNet3D(num_classes=1, n_features=[1, 1, 1], padding="valid", norm="none",
                   spatial_rank=2)
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(1, 44, 48, 1, 1)).astype("float32")
    model(x)
    for layer in _layers(model):
        if not layer.weights:
            continue
        kernel, bias = layer.get_weights()
        if layer.name.endswith("_deconv"):
            kernel = np.zeros_like(kernel)
        elif layer.name.endswith("_conv0") and layer.name.startswith("up"):
            kernel = _delta(kernel, source=1)  # concat is [upsampled, skip]: keep the skip
        else:
            kernel = _delta(kernel)
        layer.set_weights([kernel, np.zeros_like(bias)])
    out = np.asarray(model(x))
    assert out.shape == (1, 4, 8, 1, 1)
    np.testing.assert_allclose(out, x[:, 20:24, 20:28], rtol=1e-6)


# -- No New-Net ------------------------------------------------------------------------

def test_nonewnet_layers_follow_the_paper():
    defaults = NoNewNet(num_classes=4).get_config()
    assert defaults["n_features"] == [30, 60, 120, 240, 480]
    assert defaults["activation"] == "leakyrelu" and defaults["norm"] == "instance"
    assert defaults["deep_supervision"] is False
    assert NoNewNet.window_divisor({}) == 16

    import keras
    model = NoNewNet(num_classes=2, n_features=[2, 4, 8])
    model(np.zeros((1, 8, 8, 8, 1), "float32"))
    convs = [conv for conv in _layers(model, keras.layers.Conv3D) if conv.name != "classifier"]
    norms = _layers(model, keras.layers.GroupNormalization)
    leaky = _layers(model, keras.layers.LeakyReLU)
    assert len(norms) == len(convs) == 10
    assert [n.groups for n in norms] == [c.filters for c in convs]  # one channel a group: instance
    assert len(leaky) == 10 and all(abs(act.negative_slope - 0.01) < 1e-9 for act in leaky)
    assert not _layers(model, keras.layers.Conv3DTranspose)
    assert len(_layers(model, LinearUpsampling)) == 2
    assert model.get_layer("bottom_conv1").filters == 4  # fewer filters before upsampling

    relu = NoNewNet(num_classes=2, n_features=[2, 4], activation="relu")
    relu(np.zeros((1, 4, 4, 4, 1), "float32"))
    assert not _layers(relu, keras.layers.LeakyReLU)


def test_linear_upsampling_is_bilinear_and_trilinear():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 1, 3)).astype("float32")
    expected = tf.image.resize(x[:, :, :, 0], (10, 12), method="bilinear").numpy()
    out = np.asarray(LinearUpsampling(spatial_rank=2)(x))
    assert out.shape == (2, 10, 12, 1, 3)
    np.testing.assert_allclose(out[:, :, :, 0], expected, atol=1e-5)

    i, j, k = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    ramp = (1.0 * i + 2.0 * j - 3.0 * k)[None, ..., None].astype("float32")
    up = np.asarray(LinearUpsampling()(ramp))[0, 1:-1, 1:-1, 1:-1, 0]  # edges are clamped
    p, q, r = np.meshgrid(*(np.arange(1, 2 * n - 1) for n in (4, 5, 6)), indexing="ij")
    p, q, r = ((o + 0.5) / 2 - 0.5 for o in (p, q, r))  # half-voxel centres in input voxels
    np.testing.assert_allclose(up, p + 2 * q - 3 * r, atol=1e-5)


def test_nonewnet_deep_supervision(check_network):
    model = check_network(NoNewNet, dict(num_classes=3, n_features=[2, 4, 8, 8],
                                         deep_supervision=True),
                          (1, 8, 8, 8, 1), (1, 8, 8, 8, 3))
    names = {layer.name for layer in _layers(model)}
    assert {"up2_segment", "up1_segment", "up1_segment_sum", "up0_segment_sum"} <= names


# -- V-Net -----------------------------------------------------------------------------

def test_vnet_layers_follow_the_paper():
    import keras
    config = VNet(num_classes=2).get_config()
    assert config["n_features"] == [16, 32, 64, 128, 256] and config["n_convs"] == [1, 2, 3, 3, 3]
    assert config["activation"] == "prelu" and config["kernel_size"] == 5
    assert VNet.window_divisor({}) == 16 and "x=24 (try 16 or 32)" in window_error(VNet, (24, 32, 32))

    model = VNet(num_classes=2, n_features=[2, 4, 8], n_convs=[1, 2, 3])
    model(np.zeros((1, 8, 8, 8, 1), "float32"))
    adds = [add.name for add in _layers(model, keras.layers.Add)]
    assert sorted(adds) == ["down0_add", "down1_add", "down2_add", "up0_add", "up1_add"]
    assert _layers(model, keras.layers.PReLU) and not _layers(model, keras.layers.BatchNormalization)
    assert model.get_layer("down1_downconv").strides == (2, 2, 2)
    assert model.get_layer("down2_conv2").kernel_size == (5, 5, 5)
    assert model.get_layer("up1_conv0").filters == 8  # decoder stages twice the encoder's width
    assert len(_layers(model, keras.layers.Conv3DTranspose)) == 2


def test_vnet_residual_shortcuts_carry_the_input():
    # With every stage convolution and up-convolution zeroed, only the residual shortcuts
    # remain: the first stage's input (repeated to n_features[0]) reaches the classifier.
    model = VNet(num_classes=1, n_features=[2, 4], n_convs=[1, 1], activation="relu")
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(1, 4, 4, 4, 1)).astype("float32")
    model(x)
    for layer in _layers(model):
        if not layer.weights or layer.name.endswith("_downconv"):
            continue
        kernel, bias = (np.zeros_like(w) for w in layer.get_weights())
        if layer.name == "classifier":
            kernel[..., 2, 0] = 1.0  # channels: [upsampled (2), skip (2)]
        layer.set_weights([kernel, bias])
    np.testing.assert_allclose(np.asarray(model(x)), x, rtol=1e-6)


def test_vnet_2d_and_multichannel(check_network):
    model = check_network(VNet, dict(num_classes=2, n_features=[3, 6], n_convs=[1, 2],
                                     spatial_rank=2, norm="instance"),
                          (1, 8, 6, 1, 2), (1, 8, 6, 1, 2))
    assert model.get_layer("down1_conv1").kernel_size == (5, 5, 1)
    with pytest.raises(ValueError, match="n_convs"):
        VNet(num_classes=2, n_features=[2, 4], n_convs=[1])


def test_logits_float32_under_mixed_precision():
    import keras
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for model in (NoNewNet(num_classes=2, n_features=[2, 4, 8], deep_supervision=True),
                      VNet(num_classes=2, n_features=[2, 4], n_convs=[1, 1])):
            out = model(np.zeros((1, 4, 4, 4, 1), "float32"))
            assert model.get_layer("down0_conv0").compute_dtype == "bfloat16"
            assert keras.backend.standardize_dtype(out.dtype) == "float32", model.name
    finally:
        keras.mixed_precision.set_global_policy(previous)
