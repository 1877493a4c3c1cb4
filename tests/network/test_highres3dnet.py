import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error, window_output
from niftykit.network.highres3dnet import HighRes3DNet, HighRes3DNetLarge, HighRes3DNetSmall

TINY = dict(first_features=4, n_features=[4, 6, 8], n_blocks=1, head_features=[8])


def _trunk_counts():
    """Weights and normalised channels up to the last residual block (one input channel),
    counted from Li et al. 2017, Fig. 1: 3×3×3 conv 16, then 3 blocks each of 16, 32, 64."""
    k = 27
    weights = (k * 1 * 16                                   # conv0
               + 3 * 2 * k * 16 * 16                        # res1: 3 blocks × 2 convs 16→16
               + k * 16 * 32 + 5 * k * 32 * 32              # res2: first conv widens 16→32
               + k * 32 * 64 + 5 * k * 64 * 64)             # res3: first conv widens 32→64
    channels = (16                                          # conv0 norm
                + 3 * (16 + 16)                             # res1 pre-activation norms
                + (16 + 32) + 2 * (32 + 32)                 # res2
                + (32 + 64) + 2 * (64 + 64))                # res3
    return weights, channels


def _head_counts(cls, c):
    """Head weights, head normalised channels and classifier parameters (NiftyNet's tables)."""
    if cls is HighRes3DNet:          # 1×1×1 conv 80, classifier 80→c
        return 64 * 80, 80, 80 * c + c
    if cls is HighRes3DNetSmall:     # 3×3×3 conv 80, 3×3×3 stride-2 deconv 80, classifier
        return 27 * 64 * 80 + 27 * 80 * 80, 80 + 80, 80 * c + c
    return 27 * 64 * 64 + 64 * 64, 64 + 64, 64 * c + c  # large: 3×3×3 64, 1×1×1 64


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("cls", [HighRes3DNet, HighRes3DNetSmall, HighRes3DNetLarge])
def test_default_parameter_counts_match_the_hand_count(cls):
    c = 10
    model = cls(num_classes=c)
    assert model(np.zeros((1, 8, 8, 8, 1), "float32")).shape == (1, 8, 8, 8, c)
    weights, channels = _trunk_counts()
    head_weights, head_channels, classifier = _head_counts(cls, c)
    norm_channels = channels + head_channels
    assert _trainable(model) == weights + head_weights + 2 * norm_channels + classifier
    assert model.count_params() == _trainable(model) + 2 * norm_channels  # moving mean/var
    if cls is HighRes3DNet:  # Li et al. report 0.81M parameters (before the classifier)
        assert weights + head_weights == 807_344  # convolution weights, as the docstring says
        assert round((_trainable(model) - classifier) / 1e6, 2) == 0.81


def test_dilation_rates_reach_the_layers():
    model = HighRes3DNet(num_classes=2)
    rates = {layer.name: layer.dilation_rate for layer in model.layers
             if layer.name.startswith("res") and "_conv" in layer.name}
    assert len(rates) == 18
    assert {rates[f"res1_{b}_conv{i}"] for b in range(3) for i in range(2)} == {(1, 1, 1)}
    assert {rates[f"res2_{b}_conv{i}"] for b in range(3) for i in range(2)} == {(2, 2, 2)}
    assert {rates[f"res3_{b}_conv{i}"] for b in range(3) for i in range(2)} == {(4, 4, 4)}
    flat = HighRes3DNet(num_classes=2, spatial_rank=2, dilations=(1, 3, 5))
    assert flat.get_layer("res3_0_conv1").dilation_rate == (5, 5, 1)
    assert flat.get_layer("res3_0_conv1").kernel_size == (3, 3, 1)


def test_every_block_adds_its_shortcut():
    model = HighRes3DNet(num_classes=2, norm="none", **TINY)
    model(np.zeros((1, 6, 6, 6, 1), "float32"))
    adds = [layer.name for layer in model.layers if layer.name.endswith("_add")]
    assert adds == ["res1_0_add", "res2_0_add", "res3_0_add"]
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 6, 4)).astype("float32")
    block = model.blocks[1]  # 4 -> 6 channels: shortcut zero-padded by 1 on each side
    for layer in block["units"]:
        if hasattr(layer, "kernel"):
            layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    y = np.asarray(block["add"]([model._run(block["units"], x, False), model._shortcut(block, x)]))
    np.testing.assert_allclose(y[..., 1:5], x, atol=1e-6)
    np.testing.assert_allclose(y[..., [0, 5]], 0.0, atol=1e-6)


def test_narrowing_block_projects_its_shortcut():
    model = HighRes3DNet(num_classes=2, first_features=8, n_features=[4], n_blocks=1,
                         dilations=[2], head_features=[4])
    assert model(np.zeros((1, 5, 5, 5, 1), "float32")).shape == (1, 5, 5, 5, 2)
    assert model.get_layer("res1_0_proj").filters == 4


def test_dilated_convolutions_equal_niftynet_space_to_batch():
    """NiftyNet dilated by space_to_batch (axes divisible by the rate); Keras pads itself."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 12, 8, 16, 2)).astype("float32")
    conv = keras.layers.Conv3D(3, 3, padding="same", dilation_rate=4, use_bias=False)
    ours = np.asarray(conv(x))
    blocks = tf.space_to_batch_nd(x, [4, 4, 4], [[0, 0]] * 3)
    theirs = tf.nn.convolution(blocks, conv.kernel, padding="SAME")
    theirs = np.asarray(tf.batch_to_space(theirs, [4, 4, 4], [[0, 0]] * 3))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert conv(x[:, :11, :7, :5]).shape == (1, 11, 7, 5, 3)  # any size


def test_window_rules():
    assert window_error(HighRes3DNet, (37, 21, 5), {}) is None
    assert window_output(HighRes3DNet, (37, 21, 5), {}) == (37, 21, 5)
    assert window_error(HighRes3DNetLarge, (37, 21, 5), {}) is None
    assert HighRes3DNet.window_rule({}) == "any size"
    message = window_error(HighRes3DNetSmall, (37, 20, 1), {})
    assert "divisible by 2" in message and "x=37 (try 36 or 38)" in message
    assert NETWORKS.get("highres3dnet_small") is HighRes3DNetSmall


def test_small_2d_without_norm(check_network):
    model = check_network(HighRes3DNetSmall, dict(num_classes=3, spatial_rank=2, norm="none",
                                                  activation="prelu", **TINY),
                          (1, 8, 6, 1, 2), (1, 8, 6, 1, 3))
    assert model.get_layer("conv0_conv").strides == (2, 2, 1)
    assert model.get_layer("deconv_conv").use_bias
    assert model.get_layer("conv1_conv").kernel_size == (3, 3, 1)


def test_variants_heads_and_dropout():
    large = HighRes3DNetLarge(num_classes=2)
    assert large.dropout.rate == 0.5 and large.head_kernels == [3, 1]
    assert HighRes3DNet(num_classes=2).dropout is None
    config = HighRes3DNetLarge(num_classes=2, dropout_rate=0.1, n_blocks=[1, 2, 3]).get_config()
    assert config["dropout_rate"] == 0.1 and config["n_blocks"] == [1, 2, 3]
    with pytest.raises(ValueError, match="n_blocks"):
        HighRes3DNet(num_classes=2, n_blocks=[1, 2])
    with pytest.raises(ValueError, match="head_kernels"):
        HighRes3DNet(num_classes=2, head_features=[8, 8])
