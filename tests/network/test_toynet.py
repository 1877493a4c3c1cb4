from niftykit.network import NETWORKS, window_error
from niftykit.network.toynet import ToyNet


def test_toynet_shape_config_and_save(check_network):
    check_network(ToyNet, dict(num_classes=4, n_features=3, activation="leakyrelu"),
                  (1, 9, 7, 5, 2), (1, 9, 7, 5, 4))


def test_toynet_takes_any_window():
    assert NETWORKS.get("toynet") is ToyNet
    assert window_error(ToyNet, (9, 7, 5), {}) is None
