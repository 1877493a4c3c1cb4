from pathlib import Path

from niftykit.config.location import config_error, display_path, message, override_origin
from niftykit.errors import ConfigError


def test_message_shapes():
    assert message("a.yaml", "training", "lr", "bad") == "a.yaml: [training] lr: bad"
    assert message("a.yaml", "trainig", None, "bad") == "a.yaml: [trainig]: bad"
    assert message("a.yaml", None, "lr", "bad") == "a.yaml: lr: bad"
    assert message("a.yaml", None, None, "bad") == "a.yaml: bad"


def test_config_error_and_override_origin():
    error = config_error(override_origin("lr=x"), "training", "lr", "bad")
    assert isinstance(error, ConfigError)
    assert str(error) == "command line (lr=x): [training] lr: bad"


def test_display_path_is_relative_inside_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "configs" / "a.yaml") == str(Path("configs") / "a.yaml")
    assert display_path("/elsewhere/a.yaml") == "/elsewhere/a.yaml"
