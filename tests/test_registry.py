"""Dotted ``package.module:Name`` lookups: user code on PYTHONPATH or in the current folder."""

import sys

import pytest

from niftykit.errors import ConfigError
from niftykit.registry import import_object


def test_a_module_in_the_current_folder_is_found(tmp_path, monkeypatch):
    package = tmp_path / "my_nk_tasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "seg.py").write_text("class MyApp:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert import_object("my_nk_tasks.seg:MyApp", "application").__name__ == "MyApp"


def test_a_missing_module_or_name_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg_xyz.mod'.*current folder"):
        import_object("no_such_pkg_xyz.mod:Thing", "network")
    with pytest.raises(ConfigError, match="has no 'Nope'"):
        import_object("niftykit.errors:Nope", "loss")
