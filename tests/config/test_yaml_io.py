import pytest

from niftykit.config import load_config
from niftykit.errors import ConfigError


def _error(write, text):
    with pytest.raises(ConfigError) as info:
        load_config(write("bad.yaml", text))
    return str(info.value)


def test_typo_section(write, minimal_yaml):
    message = _error(write, minimal_yaml + "trainig:\n  lr: 0.1\n")
    assert message == "configs/bad.yaml: [trainig]: unknown section; did you mean 'training'?"


def test_unknown_section_without_near_match(write, minimal_yaml):
    message = _error(write, minimal_yaml + "zzzzzzzzzz: {}\n")
    assert message.startswith("configs/bad.yaml: [zzzzzzzzzz]: unknown section; expected one of "
                              "application, inputs, system")


def test_top_level_key_that_belongs_in_a_section(write, minimal_yaml):
    message = _error(write, minimal_yaml + "lr: 0.001\n")
    assert message == "configs/bad.yaml: lr: not a section; it belongs in [training]"


def test_empty_file(write):
    assert _error(write, "# nothing\n").startswith("configs/bad.yaml: empty config file")


def test_not_a_mapping(write):
    assert "expected a mapping" in _error(write, "- a\n- b\n")


def test_section_not_a_mapping(write, minimal_yaml):
    message = _error(write, minimal_yaml + "training: 5\n")
    assert message == "configs/bad.yaml: [training]: expected a mapping of keys to values, got 5"


def test_inputs_not_a_mapping(write):
    assert _error(write, "inputs: [ct]\n").startswith("configs/bad.yaml: [inputs]: expected a "
                                                      "mapping")


def test_syntax_error_names_the_line(write):
    message = _error(write, "training:\n  lr: [0.1\n  max_iter: 3\nnetwork: {}\n")
    assert message.startswith("configs/bad.yaml: line ")
    assert "YAML syntax error" in message


def test_syntax_error_line_number_is_right(write):
    message = _error(write, "training:\n  lr: 0.1\n   max_iter: 3\n")
    assert message.startswith("configs/bad.yaml: line 3, column")


def test_duplicate_key(write, minimal_yaml):
    message = _error(write, minimal_yaml + "training:\n  lr: 0.1\n  lr: 0.2\n")
    assert "key 'lr' is given twice" in message and message.startswith("configs/bad.yaml: line 18")


def test_empty_section_is_allowed(write, minimal_yaml):
    config = load_config(write("ok.yaml", minimal_yaml + "training:\nevaluation:\n"))
    assert config.training.lr == 0.01
