"""convert_ini: NiftyNet INI → niftykit YAML that loads to the same Config."""

import shutil

import pytest
import yaml

from niftykit.config import convert_ini, load_config
from niftykit.errors import ConfigError


def test_round_trip_beside_the_ini(shared_ini, tmp_path):
    ini = shutil.copy(shared_ini, tmp_path / shared_ini.name)
    out = tmp_path / shared_ini.name.replace(".ini", ".yaml")
    out.write_text(convert_ini(ini, out))
    assert load_config(out) == load_config(ini)


def test_round_trip_in_another_folder(shared_ini, tmp_path):
    ini = shutil.copy(shared_ini, tmp_path / shared_ini.name)
    out = tmp_path / "converted" / "deeper" / "config.yaml"
    out.parent.mkdir(parents=True)
    out.write_text(convert_ini(ini, out))
    assert load_config(out) == load_config(ini)


def test_only_the_keys_the_ini_sets(shared_inis, tmp_path):
    ini = shutil.copy(shared_inis / "default_segmentation.ini", tmp_path / "seg.ini")
    data = yaml.safe_load(convert_ini(ini))
    assert data["application"] == "segmentation"
    assert data["inputs"]["modality1"]["spatial_window_size"] == [20, 42, 42]
    assert data["inputs"]["modality1"]["path_to_search"] == "example_volumes/monomodal_parcellation"
    assert data["system"]["model_dir"] == "models/model_monomodal_toy"
    assert "max_checkpoints" in data["training"] and "validation_every_n" not in data["training"]
    assert data["segmentation"] == {"image": ["modality1"], "label": ["label"],
                                    "output_prob": False, "num_classes": 160,
                                    "label_normalisation": True}


def test_rebased_paths_and_default_model_dir(tmp_path):
    (tmp_path / "a").mkdir()
    ini = tmp_path / "a" / "x.ini"
    ini.write_text("[ct]\npath_to_search = data\n[SEGMENTATION]\nimage = ct\nnum_classes = 2\n")
    data = yaml.safe_load(convert_ini(ini, tmp_path / "b" / "x.yaml"))
    assert data["inputs"]["ct"]["path_to_search"] == "../a/data"
    assert data["system"] == {"model_dir": "../a/model"}
    assert "system" not in yaml.safe_load(convert_ini(ini))


def test_ignored_keys_are_listed_in_a_leading_comment(shared_inis, tmp_path):
    ini = shutil.copy(shared_inis / "default_monomodal_regression.ini", tmp_path / "r.ini")
    text = convert_ini(ini)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert text.startswith("#")
    assert any("[SYSTEM] queue_length: this key belongs in [NETWORK]" in line for line in header)
    assert "queue_length" not in yaml.safe_load(text).get("system", {})


def test_convert_rejects_yaml_and_invalid_ini(minimal, write):
    with pytest.raises(ConfigError, match="not a NiftyNet .ini file"):
        convert_ini(minimal)
    bad = write("bad.ini", "[ct]\npath_to_search = d\n[SEGMENTATION]\nimage = ct\n"
                           "num_classes = x\n")
    with pytest.raises(ConfigError, match=r"\[SEGMENTATION\] num_classes: expected an integer"):
        convert_ini(bad)
