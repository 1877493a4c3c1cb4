import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error
from niftykit.network.heads import RegressionHead
from niftykit.network.unet import UNet3D


def test_head_on_a_voxel_encoder(check_network):
    model = check_network(RegressionHead, dict(num_classes=2, encoder="toynet",
                                               encoder_params=dict(n_features=3), features=5,
                                               hidden=[6, 4], pooling="max", dropout=0.2),
                          (2, 6, 5, 4, 1), (2, 2))
    assert model.encoder.num_classes == 5
    assert model.get_layer("head_hidden1").units == 4


def test_head_on_a_vector_encoder_in_2d(check_network):
    model = check_network(RegressionHead, dict(num_classes=1, encoder="resnet", spatial_rank=2,
                                               encoder_params=dict(n_features=[4, 8, 16],
                                                                   n_blocks_per_resolution=1),
                                               features=6, activation="elu", decay=1e-4),
                          (2, 8, 8, 1, 1), (2, 1))
    encoder = model.encoder
    assert encoder.output_kind == "vector" and encoder.num_classes == 6
    assert (encoder.spatial_rank, encoder.activation, encoder.decay) == (2, "elu", 1e-4)
    assert len(model.losses) > 0  # the encoder's regularisers count


def test_head_takes_an_encoder_by_dotted_path_or_class():
    by_path = RegressionHead(num_classes=1, encoder="niftykit.network.unet:UNet3D")
    by_class = RegressionHead(num_classes=1, encoder=UNet3D)
    assert isinstance(by_path.encoder, UNet3D) and isinstance(by_class.encoder, UNet3D)
    config = by_class.get_config()
    assert config["encoder"] == "niftykit.network.unet:UNet3D"
    assert RegressionHead.from_config(config).get_config() == config


def test_window_contract_is_the_encoders():
    unet = dict(encoder="unet", encoder_params=dict(n_features=[4, 8, 16]))
    assert window_error(RegressionHead, (16, 16, 1), unet) is None
    message = window_error(RegressionHead, (18, 16, 16), unet)
    assert message == window_error(UNet3D, (18, 16, 16), unet["encoder_params"])
    assert "x=18 (try 16 or 20)" in message
    resnet = dict(encoder="resnet", encoder_params=dict(n_features=[4, 8, 16, 32]))
    assert "at least 8" in window_error(RegressionHead, (4, 8, 8), resnet)
    assert window_error(RegressionHead, (9, 9, 9), dict(encoder="toynet")) is None
    assert NETWORKS.get("regression_head") is RegressionHead


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        RegressionHead(num_classes=1, encoder="toynet", pooling="sum")
    with pytest.raises(ValueError, match="num_classes"):
        RegressionHead(num_classes=1, encoder="toynet", encoder_params=dict(num_classes=3))


def test_short_regression_fit_lowers_the_mse():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 6, 6, 1)).astype("float32")
    x += rng.normal(size=(8, 1, 1, 1, 1)).astype("float32")  # a per-window offset to find
    y = np.stack([x.mean(axis=(1, 2, 3, 4)), 2.0 * x.std(axis=(1, 2, 3, 4))], axis=-1)
    model = RegressionHead(num_classes=2, encoder="toynet", encoder_params=dict(n_features=4),
                           features=8, hidden=[8])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=False)
    before = model.evaluate(x, y, verbose=0)
    model.fit(np.tile(x, (40, 1, 1, 1, 1)), np.tile(y, (40, 1)), batch_size=8, shuffle=False,
              verbose=0)  # 40 steps on the same batch, one epoch
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.3 * before, (before, after)
