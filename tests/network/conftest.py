"""The one shared check every network passes: shape, get_config round trip, .keras save/load."""

from pathlib import Path
from typing import Any, Callable, Dict, Sequence

import numpy as np
import pytest


def _check(cls: Any, kwargs: Dict[str, Any], input_shape: Sequence[int],
           output_shape: Sequence[int], tmp_path: Path) -> Any:
    import keras
    model = cls(**kwargs)
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == tuple(output_shape)
    assert y.dtype == np.float32
    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone(x)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), y, rtol=1e-5, atol=1e-5)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names)), "every layer has its own name"
    return model


@pytest.fixture
def check_network(tmp_path: Path) -> Callable[..., Any]:
    """``check_network(cls, kwargs, input_shape, output_shape)``."""
    return lambda cls, kwargs, i, o: _check(cls, kwargs, i, o, tmp_path)
