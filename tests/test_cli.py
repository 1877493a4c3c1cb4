"""The command line: exit codes, one-line errors, no TensorFlow at start-up."""

import subprocess
import sys
from pathlib import Path

import pytest

from niftykit import __version__
from niftykit.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_help_and_config_commands_do_not_import_tensorflow():
    code = ("import sys\nfrom niftykit.cli import main\n"
            f"main(['config', 'show', '-c', {str(QUICKSTART)!r}])\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TF-LOADED' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'TF-FREE')")
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert "TF-FREE" in result.stdout
    assert "usage: niftykit" in result.stdout


def test_python_dash_m_and_version():
    result = subprocess.run([sys.executable, "-m", "niftykit", "--version"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"niftykit {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "train" in capsys.readouterr().out


def test_missing_tensorflow_names_the_extra(monkeypatch, capsys, tmp_path):
    from niftykit.data import make_shapes
    make_shapes(tmp_path / "data", n_subjects=2, shape=(16, 16, 16))
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    status = main(["train", "-c", str(QUICKSTART),
                   "--set", f"inputs.image.path_to_search={tmp_path / 'data'}",
                   "--set", f"inputs.label.path_to_search={tmp_path / 'data'}",
                   "--set", f"system.model_dir={tmp_path / 'model'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1
    assert "niftykit[cpu]" in err[0] and "niftykit[gpu]" in err[0]


BAD_CONFIGS = {
    "section_typo": ("trainig:\n  lr: 0.1\n", "[trainig]", "did you mean 'training'"),
    "key_typo": ("training:\n  max_itr: 10\n", "max_itr", "did you mean 'max_iter'"),
    "wrong_section": ("system:\n  lr: 0.1\n", "[system] lr", "[training]"),
    "wrong_type": ("training:\n  max_iter: many\n", "[training] max_iter", "integer"),
    "missing_input": ("segmentation:\n  image: [T3]\n  label: label\n  num_classes: 2\n",
                      "[segmentation] image", "'T3'"),
}
BASE = ("inputs:\n  image: {path_to_search: ., filename_contains: [img]}\n"
        "  label: {path_to_search: ., filename_contains: [lab]}\n")


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_errors_exit_2_with_one_line(case, tmp_path, capsys):
    body, where, hint = BAD_CONFIGS[case]
    if "segmentation:" not in body:
        body += "segmentation:\n  image: [image]\n  label: label\n  num_classes: 2\n"
    path = tmp_path / f"{case}.yaml"
    path.write_text(BASE + body)
    for command in (["train"], ["config", "show"]):
        assert main([*command, "-c", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith("niftykit: error: ")
        assert path.name in err[0] and where in err[0] and hint in err[0]


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  max_itr: 10\n")
    assert main(["config", "show", "-c", str(path), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "max_itr" in err


def test_unknown_override_suggests(capsys):
    assert main(["config", "show", "-c", str(QUICKSTART), "--max_itr", "5"]) == 2
    assert "max_iter" in capsys.readouterr().err


def test_overrides_reach_the_config(capsys):
    import yaml
    assert main(["config", "show", "-c", str(QUICKSTART), "--lr", "0.5",
                 "--set", "training.max_iter=7", "--set", "inputs.image.spatial_window_size=[8,8,8]"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["training"]["lr"] == 0.5
    assert shown["training"]["max_iter"] == 7
    assert list(shown["inputs"]["image"]["spatial_window_size"]) == [8, 8, 8]
    assert shown["network"]["batch_size"] == 4           # from the file
    assert shown["training"]["starting_iter"] == 0       # a default, filled in


def test_not_supported_setting_stops_train(tmp_path, capsys):
    assert main(["train", "-c", str(QUICKSTART), "--set", "network.keep_prob=0.5"]) == 2
    err = capsys.readouterr().err
    assert "keep_prob" in err and "not supported yet" in err


def test_config_convert_writes_once_and_refuses_to_overwrite(tmp_path, capsys):
    import shutil
    from niftykit.config import load_config
    ini = shutil.copy(ROOT / "tests" / "data" / "niftynet_configs" / "highres3dnet_config.ini",
                      tmp_path / "highres.ini")
    out = tmp_path / "converted" / "highres.yaml"
    assert main(["config", "convert", str(ini), "-o", str(out)]) == 0
    assert load_config(out) == load_config(ini)
    assert main(["config", "convert", str(ini), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["config", "convert", str(ini), "-o", str(out), "--overwrite"]) == 0


def test_networks_lists_every_network_with_its_window_rule(capsys):
    from niftykit.network import NETWORKS
    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    for name in NETWORKS.names():
        assert f"\n{name} " in out
    assert "divisible by 3 (d_factor), at least 51" in out and "one vector" in out
