"""ResUNet, the Keras twin of MONAI's ``monai.networks.nets.UNet``: parameter counts equal to
MONAI's (numbers below printed by MONAI 1.6.1, ``sum(p.numel() for p in net.parameters())``),
shapes, PyTorch-style padding, the window contract, mixed precision, and, where torch and MONAI
are installed (``.venv-bench``), the same outputs as MONAI's network given MONAI's weights."""

import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error
from niftykit.network.resunet import ResUNet

# (ResUNet arguments, input channels, MONAI UNet arguments, MONAI's parameter count)
MONAI_COUNTS = [
    pytest.param(dict(num_classes=9, channels=(16, 32, 64), strides=(2, 2), num_res_units=2,
                      norm="batch", act="relu"), 1,
                 dict(spatial_dims=3, in_channels=1, out_channels=9, channels=(16, 32, 64),
                      strides=(2, 2), num_res_units=2, norm="batch", act="relu"),
                 290_271, id="issue-6"),
    pytest.param(dict(num_classes=9, channels=(16, 32, 64), strides=(2, 2), num_res_units=2,
                      norm="instance", act="prelu"), 1,
                 dict(spatial_dims=3, in_channels=1, out_channels=9, channels=(16, 32, 64),
                      strides=(2, 2), num_res_units=2),
                 289_750, id="monai-defaults"),
    pytest.param(dict(num_classes=9, channels=(16, 32, 64), strides=(2, 2), num_res_units=0,
                      norm="batch", act="relu"), 1,
                 dict(spatial_dims=3, in_channels=1, out_channels=9, channels=(16, 32, 64),
                      strides=(2, 2), num_res_units=0, norm="batch", act="relu"),
                 119_193, id="no-residual-units"),
    pytest.param(dict(num_classes=3, channels=(8, 16, 32, 64), strides=(2, 1, 2), num_res_units=1,
                      kernel_size=5, up_kernel_size=3, norm="instance", act="prelu", dropout=0.1), 2,
                 dict(spatial_dims=3, in_channels=2, out_channels=3, channels=(8, 16, 32, 64),
                      strides=(2, 1, 2), num_res_units=1, kernel_size=5, up_kernel_size=3,
                      norm="instance", act="prelu", dropout=0.1),
                 497_284, id="four-levels-stride-1-kernel-5"),
    pytest.param(dict(num_classes=9, channels=(16, 32, 64), strides=(2, 2), num_res_units=2,
                      norm="batch", act="relu", bias=False), 1,
                 dict(spatial_dims=3, in_channels=1, out_channels=9, channels=(16, 32, 64),
                      strides=(2, 2), num_res_units=2, norm="batch", act="relu", bias=False),
                 289_885, id="no-bias"),
    pytest.param(dict(num_classes=2, channels=(4, 8), strides=(1,), num_res_units=2,
                      norm="batch", act="relu", in_channels=4), 4,
                 dict(spatial_dims=3, in_channels=4, out_channels=2, channels=(4, 8), strides=(1,),
                      num_res_units=2, norm="batch", act="relu"),
                 4_332, id="first-level-stride-1-identity-residual"),
]


def _trainable(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


@pytest.mark.parametrize("kwargs, channels, monai_kwargs, expected", MONAI_COUNTS)
def test_parameter_count_equals_monai(kwargs, channels, monai_kwargs, expected):
    model = ResUNet(**kwargs)
    y = model(np.zeros((1, 16, 16, 16, channels), "float32"))
    assert y.shape == (1, 16, 16, 16, kwargs["num_classes"])
    assert _trainable(model) == expected


def test_the_issue_network_has_290271_parameters_and_is_registered():
    assert NETWORKS.get("resunet") is ResUNet
    model = ResUNet(num_classes=9, channels=(16, 32, 64), strides=(2, 2), num_res_units=2,
                    norm="batch", act="relu")
    y = model(np.zeros((2, 64, 64, 64, 1), "float32"), training=False)
    assert y.shape == (2, 64, 64, 64, 9) and y.dtype == "float32"
    assert _trainable(model) == 290_271
    # non-trainable: the batch norms' moving mean and variance (MONAI's running buffers)
    assert model.count_params() - _trainable(model) == 2 * (16 + 16 + 32 + 32 + 64 + 64 + 16 + 16 + 9)


def test_2d_windows_have_monai_2d_parameter_count():
    # UNet(spatial_dims=2, in_channels=1, out_channels=4, channels=(16, 32, 64), strides=(2, 2),
    #      num_res_units=2, norm="batch", act="relu"): 96,688 parameters
    model = ResUNet(num_classes=4, channels=(16, 32, 64), strides=(2, 2), num_res_units=2,
                    norm="batch", act="relu", spatial_rank=2)
    y = model(np.zeros((2, 20, 12, 1, 1), "float32"))
    assert y.shape == (2, 20, 12, 1, 4)
    assert _trainable(model) == 96_688


def test_pytorch_padding_of_strided_and_transposed_convolutions():
    model = ResUNet(num_classes=2, channels=(4, 8, 16), strides=(2, 3), num_res_units=1)
    model(np.zeros((1, 12, 12, 12, 1), "float32"))
    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False)}
    assert layers["down0_pad"].padding == ((1, 1),) * 3
    assert layers["down0_unit0_conv"].padding == "valid"
    assert layers["down0_residual"].padding == "valid"  # strided residual: kernel 3, same padding input
    assert layers["up0_deconv"].padding == "valid"
    assert layers["up0_deconv_crop"].cropping == ((1, 0),) * 3  # p = 1, output_padding = 1
    # stride 3: PyTorch's output_padding 2 > p = 1: one voxel that only gets the bias is
    # appended by the transposed convolution, one is cropped at each end
    assert layers["up1_deconv_crop"].cropping == ((1, 0),) * 3
    assert tuple(layers["up1_deconv"].output_padding) == (1, 1, 1)
    assert layers["bottom_residual"].kernel_size == (1, 1, 1)


def test_window_contract_is_the_product_of_the_strides():
    assert ResUNet.window_divisor({}) == 4
    assert ResUNet.window_divisor({"strides": [2, 1, 2]}) == 4
    assert ResUNet.window_divisor({"strides": [2, 2, 2], "channels": [4, 8, 16, 32]}) == 8
    assert window_error(ResUNet, (64, 64, 64), {}) is None
    message = window_error(ResUNet, (66, 64, 64), {})
    assert message and "divisible by 4" in message and "64 or 68" in message
    model = ResUNet(num_classes=3, channels=(4, 8, 16), strides=(2, 3), num_res_units=1)
    assert model(np.zeros((1, 12, 18, 6, 1), "float32")).shape == (1, 12, 18, 6, 3)


def test_act_overrides_activation_and_config_round_trips():
    model = ResUNet(num_classes=2, channels=(4, 8), strides=(2,), act="PReLU", activation="relu",
                    norm="instance", dropout=0.2, adn_ordering="nda")
    assert model.activation == "prelu" and model.adn_ordering == "NDA"
    model(np.zeros((1, 8, 8, 8, 1), "float32"))
    prelus = [w for w in model.trainable_weights if "act" in w.path]
    assert prelus and all(int(np.prod(w.shape)) == 1 for w in prelus)
    assert all(float(np.asarray(w).ravel()[0]) == 0.25 for w in prelus)
    config = model.get_config()
    assert ResUNet.from_config(config).get_config() == config


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=(16,)), "at least two"),
    (dict(strides=(2,)), "strides"),
    (dict(kernel_size=4), "odd"),
    (dict(up_kernel_size=2), "odd"),
    (dict(norm="group"), "unknown norm"),
    (dict(dropout=1.0), "dropout"),
    (dict(num_res_units=-1), "num_res_units"),
    (dict(adn_ordering="NX"), "adn_ordering"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResUNet(num_classes=2, **kwargs)


@pytest.mark.parametrize("num_res_units", [0, 2])
def test_mixed_bfloat16_gives_float32_logits(num_res_units):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = ResUNet(num_classes=3, channels=(4, 8), strides=(2,), num_res_units=num_res_units)
        y = model(np.zeros((1, 8, 8, 8, 1), "float32"), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert y.dtype == "float32"
    convs = [layer for layer in model._flatten_layers(include_self=False)
             if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose))]
    assert all(layer.compute_dtype == "bfloat16" for layer in convs)


# -- the same function as MONAI's network (only where torch and MONAI are installed) ----------

def _torch_unit(unit):
    """[(conv, norm, prelu)] and the residual convolution of a MONAI ResidualUnit/Convolution."""
    from monai.networks.blocks import ResidualUnit

    subunits = list(unit.conv.children()) if isinstance(unit, ResidualUnit) else [unit]
    out = []
    for sub in subunits:
        adn = getattr(sub, "adn", None)
        norm = getattr(adn, "N", None) if adn is not None else None
        act = getattr(adn, "A", None) if adn is not None else None
        out.append((sub.conv, norm, act))
    residual = getattr(unit, "residual", None)
    return out, residual if residual is not None and hasattr(residual, "weight") else None


def _copy_conv(keras_conv, torch_conv):
    w = torch_conv.weight.detach().numpy()
    kernel = w.transpose(2, 3, 4, 1, 0)  # conv (out, in, k...) and transposed (in, out, k...) alike
    keras_conv.kernel.assign(kernel)
    if torch_conv.bias is not None:
        keras_conv.bias.assign(torch_conv.bias.detach().numpy())


def _copy_adn(layers, norm, act):
    import keras

    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(norm.weight.detach().numpy())
            layer.beta.assign(norm.bias.detach().numpy())
            layer.moving_mean.assign(norm.running_mean.numpy())
            layer.moving_variance.assign(norm.running_var.numpy())
        elif isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.full(layer.alpha.shape, float(act.weight.detach()[0]), "float32"))


def _copy_unit(unit, torch_unit):
    subunits, residual = _torch_unit(torch_unit)
    assert len(subunits) == len(unit["convs"])
    for layers, (conv, norm, act) in zip(unit["convs"], subunits):
        _copy_conv(layers[0], conv)
        _copy_adn(layers[1:], norm, act)
    assert (residual is None) == (unit["residual"] is None)
    if residual is not None:
        _copy_conv(unit["residual"], residual)


def _copy_monai(model, net):
    """MONAI's weights (and batch-norm statistics) into the Keras twin."""
    block, levels = net.model, len(model.down_units)
    for i in range(levels):
        down, sub, up = block[0], block[1].submodule, block[2]
        _copy_unit(model.down_units[i], down)
        keras_up = model.up_layers[i]
        deconv_torch = up[0] if model.num_res_units else up
        _copy_conv(keras_up["layers"][0], deconv_torch.conv)
        adn = getattr(deconv_torch, "adn", None)
        _copy_adn(keras_up["layers"][1:], getattr(adn, "N", None), getattr(adn, "A", None))
        if model.num_res_units:
            _copy_unit(keras_up["unit"], up[1])
        if i == levels - 1:
            _copy_unit(model.bottom, sub)
        block = sub


EQUIVALENCE = [
    pytest.param(dict(channels=(4, 8, 16), strides=(2, 2), num_res_units=2, norm="batch", act="relu"),
                 (2, 1, 16, 12, 8), id="batch-relu"),
    pytest.param(dict(channels=(4, 8, 8), strides=(2, 3), num_res_units=1, norm="instance",
                      act="prelu", kernel_size=5), (2, 2, 12, 18, 6), id="instance-prelu-stride-3-k5"),
    pytest.param(dict(channels=(4, 8, 16), strides=(2, 1), num_res_units=0, norm="batch",
                      act="relu"), (1, 1, 8, 8, 8), id="no-residual-units-stride-1"),
]


@pytest.mark.parametrize("kwargs, shape", EQUIVALENCE)
def test_same_outputs_as_monai(kwargs, shape):
    torch = pytest.importorskip("torch")
    nets = pytest.importorskip("monai.networks.nets")
    import tensorflow as tf

    batch, channels = shape[0], shape[1]
    net = nets.UNet(spatial_dims=3, in_channels=channels, out_channels=3, **kwargs)
    with torch.no_grad():  # non-trivial batch-norm statistics and PReLU slopes
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, torch.nn.PReLU):
                module.weight.fill_(0.1)
    model = ResUNet(num_classes=3, **kwargs)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")  # (batch, C, x, y, z)
    x_last = x.transpose(0, 2, 3, 4, 1)
    model(x_last)
    assert _trainable(model) == sum(p.numel() for p in net.parameters())
    _copy_monai(model, net)
    for training in (False, True):
        net.train(training)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 4, 1)
        got = np.asarray(model(tf.constant(x_last), training=training))
        assert got.shape == expected.shape == (batch, *shape[2:], 3)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ours, theirs, attribute", [
    ("Crop3D", "Cropping3D", "cropping"), ("ZeroPad3D", "ZeroPadding3D", "padding")])
def test_crop_and_pad_equal_keras_in_value_gradient_shape_and_config(ours, theirs, attribute):
    """Crop3D (one slice, its gradient a PadV2) and ZeroPad3D (PadV2) against Keras' layers."""
    import keras
    import tensorflow as tf

    from niftykit.network import layers

    amounts = ((1, 0), (0, 2), (1, 1))
    x = tf.random.normal((2, 6, 7, 5, 3))
    ours, theirs = getattr(layers, ours)(amounts), getattr(keras.layers, theirs)(amounts)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = ours(x), theirs(x)
        la, lb = tf.reduce_sum(a * a * a), tf.reduce_sum(b * b * b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(tape.gradient(la, x).numpy(), tape.gradient(lb, x).numpy())
    assert ours.compute_output_shape((None, 6, 7, 5, 3)) == theirs.compute_output_shape((None, 6, 7, 5, 3))
    assert getattr(type(ours).from_config(ours.get_config()), attribute) == amounts
