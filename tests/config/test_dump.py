import yaml

from niftykit.config import config_to_yaml, load_config


def test_yaml_reloads_with_defaults_and_absolute_paths(minimal, tmp_path):
    text = config_to_yaml(load_config(minimal))
    data = yaml.safe_load(text)
    assert data["application"] == "segmentation"
    assert data["network"]["batch_size"] == 2 and data["training"]["max_iter"] == 10000
    assert data["inputs"]["ct"]["spatial_window_size"] == [32, 32, 32]
    assert data["inputs"]["ct"]["path_to_search"] == [str(tmp_path / "data")]
    assert data["system"]["model_dir"] == str(tmp_path / "configs" / "model")
    assert data["segmentation"]["num_classes"] == 9
    assert "classification" not in data
    assert "spatial_window_size: [32, 32, 32]" in text


def test_dumped_yaml_loads_to_an_equal_config_elsewhere(minimal, tmp_path):
    config = load_config(minimal, ["network.params={depth: 3, widths: [8, 16]}"])
    other = tmp_path / "elsewhere" / "dumped.yaml"
    other.parent.mkdir()
    other.write_text(config_to_yaml(config))
    assert load_config(other) == config


def test_shared_ini_dumps_and_reloads(shared_inis, tmp_path):
    config = load_config(shared_inis / "default_segmentation.ini")
    path = tmp_path / "seg.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path) == config
