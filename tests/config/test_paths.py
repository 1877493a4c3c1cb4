from pathlib import Path

import pytest

from niftykit.config.paths import PathList, PathValue, rebase, resolve
from niftykit.config.values import Invalid


def test_path_kinds():
    assert PathValue("config", optional=True).coerce("") is None
    assert PathValue("config").coerce(" data/x.csv ") == Path("data/x.csv")
    with pytest.raises(Invalid, match="expected a path"):
        PathValue("config").coerce("")
    assert PathList("config").coerce("a, b") == (Path("a"), Path("b"))
    assert PathList("config").coerce("../data") == (Path("../data"),)
    assert PathList("config").coerce("") == ()


def test_resolve_relative_absolute_and_home(tmp_path):
    assert resolve(Path("../data"), tmp_path / "configs") == tmp_path / "data"
    assert resolve(Path("/abs/x"), tmp_path) == Path("/abs/x")
    assert resolve(Path("~/x"), tmp_path) == Path.home() / "x"


def test_rebase_points_to_the_same_place(tmp_path):
    old, new = tmp_path / "a", tmp_path / "b" / "c"
    assert rebase("data", old, new) == "../../a/data"
    assert resolve(Path(rebase("data", old, new)), new) == old / "data"
    assert rebase("/abs", old, new) == "/abs"
    assert rebase("~/x", old, new) == "~/x"
    assert rebase("data", old, old) == "data"
