import pytest

from niftykit.config import check_supported, load_config
from niftykit.config.spec import field_specs
from niftykit.config.support import is_supported
from niftykit.config.sections import EvaluationConfig, SystemConfig
from niftykit.errors import NotSupportedError


def test_minimal_config_is_supported(minimal):
    check_supported(load_config(minimal))


def test_supported_values_pass(write, minimal_yaml):
    text = minimal_yaml + ("system: {num_gpus: 0, seed: 3}\n"
                           "network: {window_sampling: uniform, precision: mixed_bfloat16}\n"
                           "evaluation: {evaluations: [dice]}\n")
    check_supported(load_config(write("ok.yaml", text)))


@pytest.mark.parametrize("line, expected", [
    ("network: {rgb_normalisation: true}",
     "configs/bad.yaml: [network] rgb_normalisation: not supported yet in niftykit 0.1 "
     "(supported: False)"),
    ("network: {window_sampling: patch}",
     "configs/bad.yaml: [network] window_sampling: not supported yet in niftykit 0.1 "
     "(supported: uniform, weighted, balanced, resize, multiview, multiscale)"),
    ("network: {keep_prob: 0.5}",
     "configs/bad.yaml: [network] keep_prob: not supported yet in niftykit 0.1 (supported: 1.0)"),
    ("network: {force_output_identity_resizing: true}",
     "configs/bad.yaml: [network] force_output_identity_resizing: not supported yet in "
     "niftykit 0.1 (supported: False)"),
])
def test_unsupported_settings(write, line, expected, minimal_yaml):
    config = load_config(write("bad.yaml", minimal_yaml + line + "\n"))
    with pytest.raises(NotSupportedError) as info:
        check_supported(config)
    assert str(info.value) == expected


def test_unsupported_input_key(write, minimal_yaml):
    config = load_config(write("bad.yaml", minimal_yaml.replace(
        "interp_order: 0", "interp_order: 0\n    to_ohe: true")))
    with pytest.raises(NotSupportedError, match=r"\[inputs.label\] to_ohe: not supported yet"):
        check_supported(config)


def test_unsupported_application(write, minimal_yaml):
    text = minimal_yaml.replace("application: segmentation", "application: autoencoder")
    text = text.replace("segmentation:\n  image: ct\n  label: label\n  num_classes: 9\n",
                        "autoencoder:\n  image: ct\n")
    with pytest.raises(NotSupportedError, match="application: 'autoencoder' is not supported yet"):
        check_supported(load_config(write("ae.yaml", text)))


def test_dotted_application_is_allowed(write, minimal_yaml):
    text = minimal_yaml.replace("application: segmentation", "application: pkg.mod:App")
    check_supported(load_config(write("ok.yaml", text)))


def test_is_supported_markers():
    system = field_specs(SystemConfig)
    assert is_supported(system["seed"], 7)
    assert is_supported(system["strategy"], "default")
    assert is_supported(system["strategy"], "mirrored")
    assert not is_supported(system["event_handler"], ("model_saver",))
    evaluations = field_specs(EvaluationConfig)["evaluations"]
    assert is_supported(evaluations, ()) and is_supported(evaluations, ("Dice", "dice"))
