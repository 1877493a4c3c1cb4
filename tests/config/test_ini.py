"""NiftyNet INI files: the four shipped with NiftyNet, and INI-specific rules."""

import logging

import pytest

from niftykit.config import load_config
from niftykit.errors import ConfigError


def _error(write, text):
    with pytest.raises(ConfigError) as info:
        load_config(write("bad.ini", text))
    return str(info.value)


def test_shared_inis_load(shared_ini):
    config = load_config(shared_ini)
    assert config.inputs and config.task is not None
    assert config.system.model_dir.is_absolute()


def test_default_segmentation_values(shared_inis):
    config = load_config(shared_inis / "default_segmentation.ini")
    assert config.application == "segmentation"
    assert set(config.inputs) == {"modality1", "label"}
    modality = config.inputs["modality1"]
    assert modality.spatial_window_size == (20, 42, 42)
    assert modality.filename_removefromid == "_T1" and modality.filename_not_contains == ()
    assert config.inference.border == (0, 0, 1)
    assert config.inference.spatial_window_size == (0, 0, 3)
    assert config.segmentation.num_classes == 160 and config.training.lr == 0.01
    assert config.network.batch_size == 1 and config.network.volume_padding_size == (21, 21, 21)
    assert config.training.rotation_angle == (-10.0, 10.0)
    assert config.training.random_flipping_axes == (1,)
    assert config.evaluation.evaluations == ("Dice",)
    assert config.system.cuda_devices == ""
    assert config.training.validation_every_n == -1  # a default filled in
    assert config.system.model_dir == shared_inis / "models" / "model_monomodal_toy"


def test_highres3dnet_values(shared_inis):
    config = load_config(shared_inis / "highres3dnet_config.ini")
    t1 = config.inputs["T1"]
    assert t1.pixdim == (1.0, 1.0, 1.0) and t1.axcodes == ("A", "R", "S")
    assert config.network.name == "highres3dnet" and config.network.whitening is True
    assert config.segmentation.label == ("parcellation",)


def test_multimodal_values(shared_inis):
    config = load_config(shared_inis / "default_multimodal_segmentation.ini")
    assert config.segmentation.image == ("T1", "T2", "T1c", "Flair")
    assert config.inputs["T1"].filename_not_contains == ("T1c",)
    assert config.inputs["T1"].csv_file is None
    assert config.training.loss_type == "WGDL"


def test_monomodal_regression_values(shared_inis):
    config = load_config(shared_inis / "default_monomodal_regression.ini")
    assert config.application == "regression" and config.segmentation is None
    assert config.regression.output == ("REGRESSTARGET",)
    assert config.regression.image == ("INPUTIMAGE",) and config.regression.loss_border == 8
    assert config.network.decay == 1e-05 and config.network.reg_type == "L1"


def test_queue_length_in_system_is_ignored_with_a_warning(shared_inis, caplog):
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        config = load_config(shared_inis / "default_monomodal_regression.ini")
    assert config.network.queue_length == 5  # NiftyNet's default: the [SYSTEM] value is ignored
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert lines[0].endswith("default_monomodal_regression.ini: [SYSTEM] queue_length: this key "
                             "belongs in [NETWORK]; ignored, as NiftyNet did")


def test_wrong_section_key_warns_and_is_ignored(write, caplog, segmentation_ini):
    text = segmentation_ini.replace("[SYSTEM]\n", "[SYSTEM]\nlr = 0.5\n")
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        config = load_config(write("w.ini", text))
    assert config.training.lr == 0.01
    assert [r.getMessage() for r in caplog.records] == [
        "configs/w.ini: [SYSTEM] lr: this key belongs in [TRAINING]; ignored, as NiftyNet did"]


def test_ini_values_quotes_and_lists(write, tmp_path, segmentation_ini):
    config = load_config(write("ok.ini", segmentation_ini))
    assert config.system.cuda_devices == ""
    assert config.inputs["T1"].path_to_search == (tmp_path / "configs" / "data",)
    assert config.system.model_dir == tmp_path / "configs" / "models" / "x"
    assert config.segmentation.image == ("T1",)


def test_ini_typo_section(write, segmentation_ini):
    text = segmentation_ini + "[TRAINIG]\nlr = 0.1\n"
    assert _error(write, text) == ("configs/bad.ini: [TRAINIG]: unknown section; did you mean "
                                   "[TRAINING]?")


def test_ini_section_near_a_system_name_is_an_input_when_referenced(write, segmentation_ini):
    text = segmentation_ini.replace("[T1]", "[GANs]").replace("image = T1", "image = GANs")
    assert load_config(write("ok.ini", text)).segmentation.image == ("GANs",)


def test_ini_lower_case_system_sections(write, segmentation_ini):
    text = segmentation_ini.replace("[SYSTEM]", "[system]").replace("[SEGMENTATION]",
                                                                     "[Segmentation]")
    assert load_config(write("ok.ini", text)).segmentation.num_classes == 4


def test_ini_errors_use_ini_section_names(write, segmentation_ini):
    text = segmentation_ini + "[TRAINING]\nmax_iter = abc\n"
    assert _error(write, text) == ("configs/bad.ini: [TRAINING] max_iter: expected an integer, "
                                   "got 'abc'")
    text = segmentation_ini.replace("interp_order = 0", "interp_ordr = 0")
    assert _error(write, text) == ("configs/bad.ini: [label] interp_ordr: unknown key; did you "
                                   "mean 'interp_order'?")


def test_ini_spatial_window_one_value(write, segmentation_ini):
    text = segmentation_ini.replace("(32, 32, 32)", "105")
    message = _error(write, text)
    assert message.startswith("configs/bad.ini: [T1] spatial_window_size: give 2 or 3 values")


def test_ini_missing_input_section(write, segmentation_ini):
    text = segmentation_ini.replace("image = T1", "image = T1, T3")
    assert _error(write, text) == ("configs/bad.ini: [SEGMENTATION] image: input section 'T3' "
                                   "is not defined (inputs: T1, label)")


def test_ini_needs_one_application_section(write, segmentation_ini):
    text = segmentation_ini.replace("[SEGMENTATION]\nimage = T1\nlabel = label\nnum_classes = 4\n",
                                    "")
    assert _error(write, text).startswith("configs/bad.ini: no application section; add one of "
                                          "[SEGMENTATION]")
    text = segmentation_ini + "[REGRESSION]\nimage = T1\n"
    assert _error(write, text) == ("configs/bad.ini: [SEGMENTATION], [REGRESSION]: more than one "
                                   "application section; keep only the one for your application")


@pytest.mark.parametrize("text, expected", [
    ("[T1]\npath_to_search = a\npath_to_search = b\n", "configs/bad.ini: [T1] path_to_search: "
     "given twice (line 3)"),
    ("lr = 1\n", "configs/bad.ini: line 1: expected a [SECTION] header before 'lr = 1'"),
    ("[T1]\n[T1]\n", "configs/bad.ini: [T1]: section given twice (line 2)"),
    ("[SYSTEM]\n[system]\n[SEGMENTATION]\n", "configs/bad.ini: [system]: section given twice "
     "(also as [SYSTEM])"),
    ("[T1]\nnot a key value line\n", "configs/bad.ini: line 2: cannot read 'not a key value "
     "line'; expected key = value"),
])
def test_ini_syntax_errors(write, text, expected):
    assert _error(write, text) == expected
