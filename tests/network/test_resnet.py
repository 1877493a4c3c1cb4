import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error
from niftykit.network.resnet import ResNet, SEResNet

TINY = dict(n_features=[4, 8, 16], n_blocks_per_resolution=1)


def test_resnet_3d_bottleneck_two_units_per_stage(check_network):
    model = check_network(ResNet, dict(num_classes=3, n_features=[4, 8, 16],
                                       n_blocks_per_resolution=2),
                          (2, 8, 8, 8, 1), (2, 3))
    names = {layer.name for layer in model.layers}
    assert {"stage0_unit1_conv2", "stage1_unit0_shortcut", "stage1_unit1_add"} <= names
    assert "stage1_unit1_shortcut" not in names  # identity where shape is kept
    assert not any("_se_" in name for name in names)


def test_se_resnet_2d_windows(check_network):
    model = check_network(SEResNet, dict(num_classes=2, spatial_rank=2, reduction_ratio=4,
                                         block="basic", norm="instance", **TINY),
                          (2, 8, 12, 1, 2), (2, 2))
    assert model.get_layer("stage1_unit0_conv0").strides == (2, 2, 1)


def test_strided_stages_set_the_window_rule():
    assert ResNet.window_divisor({}) == 4  # NiftyNet's [16, 64, 128, 256]: two strided stages
    assert SEResNet.window_divisor({}) == 2
    assert window_error(ResNet, (16, 16, 16), {"n_features": [4, 8, 16, 32]}) is None
    message = window_error(ResNet, (4, 16, 12), {"n_features": [4, 8, 16, 32]})
    assert "divisible by 4, at least 8" in message and "x=4 (try 8)" in message


def test_defaults_follow_niftynet():
    config = ResNet(num_classes=2).get_config()
    assert config["n_features"] == [16, 64, 128, 256] and config["n_blocks_per_resolution"] == 10
    config = SEResNet(num_classes=2).get_config()
    assert config["n_features"] == [16, 64, 128] and config["n_blocks_per_resolution"] == 1
    assert config["reduction_ratio"] == 16
    assert NETWORKS.get("se_resnet") is SEResNet


def test_squeeze_excitation_gate_rescales_channels():
    model = SEResNet(num_classes=2, reduction_ratio=4, **TINY)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 8, 1)).astype("float32")
    before = np.asarray(model(x, training=False))
    squeeze, reduce, gate, scale = (model.get_layer(f"stage0_unit0_se_{part}")
                                    for part in ("squeeze", "reduce", "gate", "scale"))
    assert reduce.filters == 2 and gate.filters == 8
    features = np.random.default_rng(1).normal(size=(2, 4, 4, 4, 8)).astype("float32")
    weights = np.asarray(gate(model.get_layer("stage0_unit0_se_act")(reduce(squeeze(features)))))
    assert weights.shape == (2, 1, 1, 1, 8)
    assert np.all((weights > 0) & (weights < 1))
    np.testing.assert_allclose(np.asarray(scale([features, weights])), features * weights,
                               rtol=1e-6)
    # closing every gate removes the residual branches: the output changes
    for layer in model.layers:
        if layer.name.endswith("_se_gate"):
            layer.bias.assign(np.full(layer.bias.shape, -60.0, "float32"))
    assert not np.allclose(np.asarray(model(x, training=False)), before, atol=1e-4)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown block 'wide'"):
        ResNet(num_classes=2, block="wide")
    with pytest.raises(ValueError, match="at least two entries"):
        ResNet(num_classes=2, n_features=[8])
    with pytest.raises(ValueError, match="reduction_ratio"):
        SEResNet(num_classes=2, reduction_ratio=0)
