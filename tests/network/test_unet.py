import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error
from niftykit.network.unet import UNet3D


def test_unet_3d_shape_config_and_save(check_network):
    model = check_network(UNet3D, dict(num_classes=3, n_features=[4, 8, 16]),
                          (2, 16, 16, 8, 1), (2, 16, 16, 8, 3))
    assert model.count_params() > 0


def test_unet_2d_windows_keep_z(check_network):
    check_network(UNet3D, dict(num_classes=2, n_features=[4, 8], spatial_rank=2, norm="instance",
                               activation="prelu"),
                  (1, 16, 16, 1, 2), (1, 16, 16, 1, 2))


def test_unet_regularisation_adds_losses():
    model = UNet3D(num_classes=2, n_features=[4, 8], decay=1e-3, reg_type="L1")
    model(np.zeros((1, 8, 8, 8, 1), "float32"))
    assert len(model.losses) > 0
    assert float(sum(model.losses)) > 0


def test_registry_finds_unet_and_suggests():
    assert NETWORKS.get("UNet") is UNet3D
    from niftykit.errors import ConfigError, NotSupportedError
    with pytest.raises(ConfigError, match="did you mean 'unet'"):
        NETWORKS.get("unett")
    with pytest.raises(NotSupportedError, match="scalenet"):
        NETWORKS.get("scalenet")


def test_window_contract_names_nearest_sizes():
    assert window_error(UNet3D, (16, 16, 16), {"n_features": [4, 8, 16]}) is None
    assert window_error(UNet3D, (16, 16, 1), {"n_features": [4, 8, 16]}) is None
    message = window_error(UNet3D, (18, 16, 16), {"n_features": [4, 8, 16]})
    assert "divisible by 4" in message and "x=18 (try 16 or 20)" in message
