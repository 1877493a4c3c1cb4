"""configs/abdominal_seg.yaml and its NiftyNet INI twin: one config, the zoo's protocol."""

import dataclasses
import inspect
from pathlib import Path

import pytest

from niftykit.config import check_supported, load_config
from niftykit.config.load import read_raw

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
YAML, INI = CONFIGS / "abdominal_seg.yaml", CONFIGS / "abdominal_seg.ini"


@pytest.fixture(scope="module")
def config():
    return load_config(YAML)


def test_yaml_and_ini_load_to_the_same_config():
    yaml, ini = load_config(YAML), load_config(INI)
    assert (yaml.source, ini.source) == (YAML, INI)
    assert dataclasses.replace(yaml, source=None) == dataclasses.replace(ini, source=None)


def test_the_ini_ignores_no_key():
    _, ignored = read_raw(INI)
    assert ignored == []


def test_the_protocol_of_the_model_zoo(config):
    ct, label = config.inputs["ct"], config.inputs["label"]
    assert (ct.spatial_window_size, label.spatial_window_size) == ((144, 144, 144),) * 2
    assert config.network.window_sampling == "resize"
    assert ct.pixdim is None and ct.axcodes == label.axcodes == ("A", "R", "S")
    assert (ct.interp_order, label.interp_order) == (1, 0)
    assert ct.ct_window == (-1000.0, 1000.0)
    assert ct.crop_box_file == label.crop_box_file == CONFIGS.parent / "runs/abdominal/data/cropping.csv"
    assert ct.path_to_search == (CONFIGS.parent / "runs/abdominal/data",)
    assert (config.network.name, config.network.batch_size) == ("dense_vnet", 6)
    training = config.training
    assert (training.optimiser, training.lr, training.loss_type, training.max_iter) == \
        ("adam", 0.001, "DiceHinge", 3001)
    assert training.scaling_percentage == (0.0, 10.0)
    task = config.task
    assert (task.num_classes, task.label_normalisation, task.image, task.label) == \
        (9, True, ("ct",), ("label",))
    assert config.evaluation.evaluations == ("dice", "hausdorff95", "average_distance")
    assert task.evaluation_units == "label"


def test_network_params_are_the_authors_defaults(config):
    from niftykit.network.dense_vnet import DenseVNet

    defaults = {name: p.default for name, p in inspect.signature(DenseVNet).parameters.items()
                if p.default is not inspect.Parameter.empty}
    params = config.network.params
    assert set(params) <= set(defaults)

    def plain(value):
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value
    assert {key: plain(value) for key, value in params.items()} == \
        {key: plain(defaults[key]) for key in params}
    assert params["use_prior"] and params["use_bdo"] and params["prior_size"] == 12


def test_every_setting_is_supported_and_the_window_fits(config):
    from niftykit.network import NETWORKS
    from niftykit.network.registry import window_error

    check_supported(config)
    network = NETWORKS.get(config.network.name)
    assert not window_error(network, (144, 144, 144), config.network.params)
    assert not window_error(network, (80, 80, 80), config.network.params)   # the demo's window


def test_the_crop_box_file_reaches_the_preprocessing(config):
    from niftykit.application import APPLICATIONS
    from niftykit.application.preparation import build_preprocessor

    app = APPLICATIONS.get(config.application)(config)
    pre = build_preprocessor(config, app.task, config.task.num_classes)
    assert pre.crop_box_file == CONFIGS.parent / "runs/abdominal/data/cropping.csv"
    assert [s.crop_box_file for s in (*pre.images, pre.label)] == [pre.crop_box_file] * 2
