"""Building typed configs: error messages, application resolution, path resolution."""

import pytest

from niftykit.config import load_config
from niftykit.errors import ConfigError


def _error(write, text, name="bad.yaml"):
    path = write(name, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_minimal_config_fills_defaults(minimal, tmp_path):
    config = load_config(minimal)
    assert config.application == "segmentation"
    assert config.segmentation.image == ("ct",) and config.segmentation.num_classes == 9
    assert config.network.batch_size == 2 and config.training.lr == 0.01
    assert config.classification is None and config.task is config.segmentation
    assert config.source == tmp_path / "configs" / "minimal.yaml"


def test_unknown_key_suggests_nearest(write, minimal_yaml):
    message = _error(write, minimal_yaml + "training: {max_itr: 10}\n")
    assert message == "configs/bad.yaml: [training] max_itr: unknown key; did you mean 'max_iter'?"


def test_unknown_key_without_near_match_lists_keys(write, minimal_yaml):
    message = _error(write, minimal_yaml + "evaluation: {zzzzzzzz: 1}\n")
    assert message == ("configs/bad.yaml: [evaluation] zzzzzzzz: unknown key; valid keys: "
                       "evaluations, save_csv_dir, operating_point, roc_ci")


def test_key_in_wrong_section(write, minimal_yaml):
    message = _error(write, minimal_yaml + "system: {queue_length: 10}\n")
    assert message == "configs/bad.yaml: [system] queue_length: this key belongs in [network]"


def test_key_in_wrong_section_prefers_active_application(write, minimal_yaml):
    message = _error(write, minimal_yaml + "training: {num_classes: 3}\n")
    assert message.endswith("[training] num_classes: this key belongs in [segmentation]")


def test_input_key_in_system_section(write, minimal_yaml):
    message = _error(write, minimal_yaml + "network: {interp_order: 1}\n")
    assert message == ("configs/bad.yaml: [network] interp_order: this key belongs in an input "
                       "section under inputs:")


def test_unknown_key_in_input_section(write, minimal_yaml):
    message = _error(write, minimal_yaml.replace("interp_order: 0", "interp_ordr: 0"))
    assert message == ("configs/bad.yaml: [inputs.label] interp_ordr: unknown key; did you mean "
                       "'interp_order'?")


def test_wrong_type(write, minimal_yaml):
    message = _error(write, minimal_yaml + "training: {max_iter: abc}\n")
    assert message == "configs/bad.yaml: [training] max_iter: expected an integer, got 'abc'"


@pytest.mark.parametrize("line, expected", [
    ("training: {lr: -1}", "[training] lr: must be > 0, got -1.0"),
    ("network: {batch_size: 0}", "[network] batch_size: must be >= 1, got 0"),
    ("network: {keep_prob: 0}", "[network] keep_prob: must be > 0 and <= 1, got 0.0"),
    ("training: {validation_every_n: 0}",
     "[training] validation_every_n: must be -1 or >= 1 (-1 = never), got 0"),
    ("training: {max_checkpoints: 0}", "[training] max_checkpoints: must be >= 1, got 0"),
    ("training: {exclude_fraction_for_validation: 1.0}",
     "[training] exclude_fraction_for_validation: must be >= 0 and < 1, got 1.0"),
    ("network: {window_sampling: unifrom}",
     "[network] window_sampling: expected one of uniform, resize, balanced, weighted, patch, "
     "multiview, multiscale, got 'unifrom'; did you mean 'uniform'?"),
])
def test_out_of_range(write, line, expected, minimal_yaml):
    assert _error(write, minimal_yaml + line + "\n") == "configs/bad.yaml: " + expected


def test_interp_order_range(write, minimal_yaml):
    message = _error(write, minimal_yaml.replace("interp_order: 0", "interp_order: 5"))
    assert message == ("configs/bad.yaml: [inputs.label] interp_order: must be between -1 and "
                       "3, got 5")


def test_num_classes_required_and_explained(write, minimal_yaml):
    message = _error(write, minimal_yaml.replace("  num_classes: 9\n", ""))
    assert message.startswith("configs/bad.yaml: [segmentation] num_classes: required: ")
    assert "number of labels including background" in message
    message = _error(write, minimal_yaml.replace("num_classes: 9", "num_classes: 1"))
    assert message == ("configs/bad.yaml: [segmentation] num_classes: must be >= 2 (the number "
                       "of labels including background), got 1")


def test_image_required(write, minimal_yaml):
    message = _error(write, minimal_yaml.replace("  image: ct\n", ""))
    assert message.startswith("configs/bad.yaml: [segmentation] image: required:")
    assert message.endswith("(inputs: ct, label)")


def test_application_aliases_and_dotted(write, minimal_yaml):
    aliased = minimal_yaml.replace("segmentation\n", "net_segment\n", 1)
    config = load_config(write("a.yaml", aliased))
    assert config.application == "segmentation"
    dotted = minimal_yaml.replace("application: segmentation", "application: my_pkg.apps:MyApp")
    config = load_config(write("b.yaml", dotted))
    assert config.application == "my_pkg.apps:MyApp" and config.segmentation.num_classes == 9


def test_application_inferred_from_the_only_app_section(write, minimal_yaml):
    text = minimal_yaml.replace("application: segmentation\n", "")
    text = text.replace("segmentation:\n  image: ct\n  label: label\n  num_classes: 9\n",
                        "regression:\n  image: ct\n  output: label\n")
    config = load_config(write("r.yaml", text))
    assert config.application == "regression" and config.regression.output == ("label",)
    assert config.segmentation is None


def test_unknown_application(write, minimal_yaml):
    message = _error(write, minimal_yaml.replace("application: segmentation",
                                                 "application: segmentaton"))
    assert message.startswith("configs/bad.yaml: application: expected one of segmentation")
    assert message.endswith("did you mean 'segmentation'?")


def test_app_section_must_match_application(write, minimal_yaml):
    text = minimal_yaml.replace("segmentation:\n", "classification:\n")
    message = _error(write, text)
    assert message.startswith("configs/bad.yaml: [classification]: this section is for "
                              "application 'classification', but application is 'segmentation'")


def test_two_app_sections(write, minimal_yaml):
    message = _error(write, minimal_yaml + "regression: {image: ct}\n")
    assert message == ("configs/bad.yaml: [segmentation], [regression]: more than one "
                       "application section; keep only the one for your application")


def test_relative_paths_resolve_against_config_dir_and_model_dir(write, tmp_path, minimal_yaml):
    text = minimal_yaml + ("system: {model_dir: ../runs/seg, dataset_split_file: split.csv}\n"
                           "inference: {save_seg_dir: out}\n"
                           "evaluation: {save_csv_dir: /abs/eval}\n")
    config = load_config(write("paths.yaml", text))
    assert config.inputs["ct"].path_to_search == (tmp_path / "data",)
    assert config.system.model_dir == tmp_path / "runs" / "seg"
    assert config.system.dataset_split_file == tmp_path / "runs" / "seg" / "split.csv"
    assert config.inference.save_seg_dir == tmp_path / "runs" / "seg" / "out"
    assert config.network.histogram_ref_file == (tmp_path / "runs" / "seg" /
                                                 "histogram_ref_file.txt")
    assert config.evaluation.save_csv_dir.as_posix() == "/abs/eval"


def test_empty_model_dir_is_config_dir_model(write, tmp_path, minimal_yaml):
    config = load_config(write("m.yaml", minimal_yaml + "system: {model_dir: ''}\n"))
    assert config.system.model_dir == tmp_path / "configs" / "model"
    assert config.inference.save_seg_dir == tmp_path / "configs" / "model" / "output"


def test_path_to_search_list_and_home(write, tmp_path, minimal_yaml):
    text = minimal_yaml.replace("path_to_search: ../data\n    filename_contains: [CT]",
                                "path_to_search: [a, ~/b]\n    filename_contains: [CT]")
    config = load_config(write("l.yaml", text))
    from pathlib import Path
    assert config.inputs["ct"].path_to_search == (tmp_path / "configs" / "a", Path.home() / "b")


def test_optional_values_accept_null(write, minimal_yaml):
    config = load_config(write("n.yaml", minimal_yaml + "network: {name: null}\n"))
    assert config.network.name is None and config.inputs["ct"].pixdim is None
