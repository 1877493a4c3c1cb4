"""Shared fixtures for the config tests: tiny config files written in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

SHARED_INIS = Path(__file__).resolve().parents[1] / "data" / "niftynet_configs"

MINIMAL_YAML = """\
application: segmentation
inputs:
  ct:
    path_to_search: ../data
    filename_contains: [CT]
    spatial_window_size: [32, 32, 32]
  label:
    path_to_search: ../data
    filename_contains: Label
    interp_order: 0
    spatial_window_size: [32, 32, 32]
segmentation:
  image: ct
  label: label
  num_classes: 9
"""

SEGMENTATION_INI = """\
[T1]
path_to_search = ./data
filename_contains = T1
spatial_window_size = (32, 32, 32)

[label]
path_to_search = ./data
filename_contains = Label
interp_order = 0

[SYSTEM]
cuda_devices = ""
model_dir = ./models/x

[SEGMENTATION]
image = T1
label = label
num_classes = 4
"""

SHARED_INI_NAMES = ("default_segmentation.ini", "default_multimodal_segmentation.ini",
                    "highres3dnet_config.ini", "default_monomodal_regression.ini")


@pytest.fixture
def shared_inis() -> Path:
    """The folder of NiftyNet's own INI files (vendored in tests/data/niftynet_configs)."""
    assert all((SHARED_INIS / name).is_file() for name in SHARED_INI_NAMES), SHARED_INIS
    return SHARED_INIS


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Write ``configs/<name>`` under tmp_path (the working directory) and return its path."""
    monkeypatch.chdir(tmp_path)

    def _write(name: str, text: str) -> Path:
        path = tmp_path / "configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def minimal(write: Callable[[str, str], Path]) -> Path:
    """A minimal valid segmentation config at ``configs/minimal.yaml``."""
    return write("minimal.yaml", MINIMAL_YAML)


@pytest.fixture(params=SHARED_INI_NAMES)
def shared_ini(request: pytest.FixtureRequest, shared_inis: Path) -> Path:
    """Each of NiftyNet's own INI files in turn."""
    return shared_inis / request.param


@pytest.fixture
def minimal_yaml() -> str:
    """The text of a minimal valid segmentation YAML config."""
    return MINIMAL_YAML


@pytest.fixture
def segmentation_ini() -> str:
    """The text of a small valid NiftyNet segmentation INI config."""
    return SEGMENTATION_INI
