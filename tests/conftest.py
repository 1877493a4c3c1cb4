"""Suite-wide settings: quiet TensorFlow, no GPU, deterministic."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _config_args(data: Path, model: Path, *extra: str, config: str = "quickstart.yaml") -> list:
    """``-c configs/<config>`` pointed at generated ``data`` and a ``model`` folder."""
    return ["-c", str(CONFIGS / config),
            "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.path_to_search={data}",
            "--set", f"system.model_dir={model}", *extra]


@pytest.fixture(scope="session")
def config_args():
    """``config_args(data, model, *extra, config="quickstart.yaml")`` -> CLI arguments."""
    return _config_args
