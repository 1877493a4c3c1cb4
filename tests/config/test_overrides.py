"""Command-line overrides: --set section.key=value and NiftyNet-style --key value."""

import pytest

from niftykit.config import load_config
from niftykit.config.overrides import parse_value
from niftykit.config.sections import InputConfig, NetworkConfig
from niftykit.config.spec import field_specs
from niftykit.errors import ConfigError


def _error(path, *overrides):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_section_key(minimal):
    assert load_config(minimal, ["training.lr=0.001"]).training.lr == 0.001


def test_input_key_with_yaml_list(minimal):
    config = load_config(minimal, ["inputs.ct.spatial_window_size=[16,16,16]"])
    assert config.inputs["ct"].spatial_window_size == (16, 16, 16)
    assert config.inputs["label"].spatial_window_size == (32, 32, 32)


def test_ini_style_values(minimal):
    config = load_config(minimal, ["inference.border=(1, 2, 3)", "inputs.ct.filename_contains=a,b"])
    assert config.inference.border == (1, 2, 3)
    assert config.inputs["ct"].filename_contains == ("a", "b")
    config = load_config(minimal, ["border=4,5,6", "spatial_window_size=32,32"])
    assert config.inference.border == (4, 5, 6)
    assert config.inference.spatial_window_size == (32, 32, 1)


def test_bare_key(minimal):
    config = load_config(minimal, ["lr=0.001", "batch_size=4", "num_classes=3"])
    assert (config.training.lr, config.network.batch_size) == (0.001, 4)
    assert config.segmentation.num_classes == 3


def test_bare_key_applies_to_ini(write, segmentation_ini):
    config = load_config(write("a.ini", segmentation_ini), ["max_iter=7", "network.name=unet"])
    assert config.training.max_iter == 7 and config.network.name == "unet"


def test_later_override_wins_and_paths_resolve_against_config(minimal, tmp_path):
    config = load_config(minimal, ["lr=0.1", "training.lr=0.2", "system.model_dir=runs"])
    assert config.training.lr == 0.2
    assert config.system.model_dir == tmp_path / "configs" / "runs"


def test_bare_unknown_key_suggests(minimal):
    assert _error(minimal, "lrr=0.1") == ("command line (lrr=0.1): lrr: unknown key; did you mean "
                                          "'lr' (in [training])?")


def test_bare_input_key_explains(minimal):
    message = _error(minimal, "interp_order=1")
    assert message == ("command line (interp_order=1): interp_order: this key is set per input "
                       "section; use inputs.NAME.interp_order=... (inputs: ct, label)")


def test_bad_type_names_the_command_line(minimal):
    assert _error(minimal, "training.lr=abc") == ("command line (training.lr=abc): [training] lr: "
                                                  "expected a number, got 'abc'")
    assert _error(minimal, "lr=abc") == ("command line (lr=abc): [training] lr: expected a "
                                         "number, got 'abc'")


@pytest.mark.parametrize("override, expected", [
    ("trainig.lr=1", "command line (trainig.lr=1): [trainig]: unknown section; did you mean "
     "'training'?"),
    ("training.max_itr=3", "command line (training.max_itr=3): [training] max_itr: unknown "
     "key; did you mean 'max_iter'?"),
    ("system.queue_length=3", "command line (system.queue_length=3): [system] queue_length: "
     "this key belongs in [network]"),
    ("inputs.CT.interp_order=1", "command line (inputs.CT.interp_order=1): [inputs.CT]: input "
     "section 'CT' is not defined (inputs: ct, label); did you mean 'ct'?"),
    ("classification.num_classes=3", "command line (classification.num_classes=3): "
     "[classification]: not the application section of this config (it uses [segmentation])"),
    ("lr", "command line (lr): expected section.key=value, e.g. training.lr=0.001"),
    ("a.b.c=1", "command line (a.b.c=1): expected section.key=value, inputs.NAME.key=value or "
     "key=value"),
])
def test_override_errors(minimal, override, expected):
    assert _error(minimal, override) == expected


def test_parse_value_by_kind():
    network, inputs = field_specs(NetworkConfig), field_specs(InputConfig)
    assert parse_value("yes", network["name"]) == "yes"  # text keys stay text
    assert parse_value('"x y"', network["name"]) == "x y"
    assert parse_value("4", network["batch_size"]) == 4
    assert parse_value("{depth: 3}", network["params"]) == {"depth": 3}
    assert parse_value("(1,2)", inputs["spatial_window_size"]) == "(1,2)"
    assert parse_value("[1, 2", inputs["spatial_window_size"]) == "[1, 2"


def test_one_entry_of_a_mapping_key_merges_into_the_files(minimal):
    base = load_config(minimal, ["network.params={n_features: [8, 16], norm: batch}"])
    assert base.network.params == {"n_features": [8, 16], "norm": "batch"}
    config = load_config(minimal, ["network.params={n_features: [8, 16], norm: batch}",
                                   "network.params.norm=instance",
                                   "network.params.extra.depth=2",
                                   "network.params.weights_file=/data/w.weights.h5"])
    assert config.network.params == {"n_features": [8, 16], "norm": "instance",
                                     "extra": {"depth": 2}, "weights_file": "/data/w.weights.h5"}
    assert "expected section.key=value" in _error(minimal, "training.lr.x=1")


def test_network_file_params_resolve_against_the_config_folder(minimal, tmp_path, monkeypatch):
    """keras_backbone's weights_file written relative to the config, run from elsewhere."""
    monkeypatch.chdir(tmp_path)
    config = load_config(minimal, ["network.params={weights_file: weights/b.weights.h5, "
                                   "head: {init_file: ../h.h5}, name: w_file_not}"])
    folder = minimal.parent
    assert config.network.params["weights_file"] == str(folder / "weights" / "b.weights.h5")
    assert config.network.params["head"]["init_file"] == str(folder.parent / "h.h5")
    assert config.network.params["name"] == "w_file_not"
    absolute = load_config(minimal, ["network.params.weights_file=/data/w.weights.h5"])
    assert absolute.network.params["weights_file"] == "/data/w.weights.h5"
