import pytest

from niftykit.config import load_config
from niftykit.errors import ConfigError


def _error(write, text):
    with pytest.raises(ConfigError) as info:
        load_config(write("bad.yaml", text))
    return str(info.value)


def test_undefined_input_section(write, minimal_yaml):
    text = minimal_yaml.replace("  image: ct\n", "  image: [T3]\n")
    assert _error(write, text) == ("configs/bad.yaml: [segmentation] image: input section 'T3' "
                                   "is not defined (inputs: ct, label)")


def test_undefined_input_section_suggests_case(write, minimal_yaml):
    text = minimal_yaml.replace("  image: ct\n", "  image: CT\n")
    assert _error(write, text).endswith("(inputs: ct, label); did you mean 'ct'?")


def test_input_needs_a_source(write, minimal_yaml):
    text = minimal_yaml.replace("    path_to_search: ../data\n    filename_contains: Label\n",
                                "    filename_contains: Label\n")
    assert _error(write, text).startswith("configs/bad.yaml: [inputs.label] path_to_search: "
                                          "required: a folder of images")


def test_exclude_fractions_must_leave_training_data(write, minimal_yaml):
    text = minimal_yaml + ("training: {exclude_fraction_for_validation: 0.6, "
                           "exclude_fraction_for_inference: 0.4}\n")
    message = _error(write, text)
    assert message.startswith("configs/bad.yaml: [training] exclude_fraction_for_inference: ")
    assert "must be < 1" in message and "0.6 + 0.4" in message


def test_csv_file_is_a_source(write, tmp_path, minimal_yaml):
    text = minimal_yaml.replace("    path_to_search: ../data\n    filename_contains: Label\n",
                                "    csv_file: label.csv\n")
    config = load_config(write("ok.yaml", text))
    assert config.inputs["label"].csv_file == tmp_path / "configs" / "label.csv"
