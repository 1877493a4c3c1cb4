"""``keras_backbone``: a local weights file loads exactly, a missing or mismatching one is a
clear error naming it, and the adapter, freezing and name checks behave."""

import numpy as np
import pytest

from niftykit.errors import ConfigError
from niftykit.network.backbone import KerasBackbone

SMALL = dict(backbone="MobileNetV2", backbone_args=dict(alpha=0.35))


def _net(**params):
    return KerasBackbone(num_classes=2, spatial_rank=2, name="network", **{**SMALL, **params})


def _windows(channels=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (2, 32, 32, 1, channels)).astype("float32")


def test_weights_file_loads_identical_predictions(tmp_path):
    x = _windows()
    source = _net()
    expected = np.asarray(source(x, training=False))
    path = tmp_path / "mobilenet_v2_035_notop.weights.h5"
    source.encoder.save_weights(path)

    loaded = _net(weights_file=str(path))
    loaded(x)  # builds the backbone and loads the file
    loaded.logits.set_weights(source.logits.get_weights())  # the head is not in the file
    # untrained, the logits are tiny (about 1e-11): compare them relatively
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, rtol=1e-4, atol=0)
    fresh = _net()
    fresh(x)
    fresh.logits.set_weights(source.logits.get_weights())
    assert not np.allclose(np.asarray(fresh(x, training=False)), expected, rtol=1e-2, atol=0)


def test_missing_or_mismatching_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(ConfigError, match="nowhere.weights.h5 does not exist"):
        _net(weights_file=str(missing))
    other = _net(backbone_args=dict(alpha=0.5))
    other(_windows())
    wrong = tmp_path / "alpha050.weights.h5"
    other.encoder.save_weights(wrong)
    with pytest.raises(ConfigError, match="alpha050.weights.h5 does not fit MobileNetV2"):
        _net(weights_file=str(wrong))(_windows())


def test_adapters_freezing_and_names():
    frozen = _net(freeze_backbone=True, channel_adapter="conv")
    y = frozen(_windows(channels=2))
    assert y.shape == (2, 2)
    paths = {v.path for v in frozen.trainable_variables}
    assert paths == {"network/channel_adapter/kernel", "network/channel_adapter/bias",
                     "network/head_logits/kernel", "network/head_logits/bias"}
    assert any(v.path == "network/Conv1/kernel" for v in frozen.variables)
    # a conv adapter starts as the channels' mean: equal channels give repeat's output
    repeat = _net()
    repeat(_windows())
    frozen_one = _net(channel_adapter="conv")
    frozen_one(_windows())
    frozen_one.encoder.set_weights(repeat.encoder.get_weights())
    frozen_one.logits.set_weights(repeat.logits.get_weights())
    np.testing.assert_allclose(np.asarray(frozen_one(_windows(), training=False)),
                               np.asarray(repeat(_windows(), training=False)), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        _net()(_windows(channels=2))
    with pytest.raises(ValueError, match="did you mean ResNet50"):
        _net(backbone="Resnet50")
    with pytest.raises(ValueError, match="2-D backbone"):
        KerasBackbone(num_classes=2, spatial_rank=3, **SMALL)
    assert KerasBackbone.window_minimum({"backbone": "InceptionV3"}) == 75
