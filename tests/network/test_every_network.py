"""One test function over every registered network (issue 5): output shape for an
accepted window, rejection of a window it cannot take, ``get_config`` round trip,
``.keras`` save -> load -> identical predictions, unique layer names, and a few
training steps that lower the loss on a tiny batch.

The tiny cases live in ``tests/network/cases/*.py`` (one file per family); a
registered network without a case fails here.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from niftykit.network import NETWORKS, window_error, window_output

CASES_DIR = Path(__file__).parent / "cases"


def _load_cases() -> dict:
    cases = {}
    for path in sorted(CASES_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"network_cases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, case in module.CASES.items():
            assert name not in cases, f"{name} has two cases"
            cases[name] = case
    return cases


CASES = _load_cases()


def test_every_registered_network_has_a_case():
    missing = sorted(set(NETWORKS.names()) - set(CASES))
    assert not missing, f"networks without a case in tests/network/cases: {missing}"


def _build(name, case):
    cls = NETWORKS.get(name)
    params = dict(case["params"])
    model = cls(num_classes=case["num_classes"], spatial_rank=case.get("spatial_rank", 3),
                name="network", **params)
    return cls, model


def _batch(case, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *case["window"], case["channels"])).astype("float32")


def _targets(cls, case, params, batch=2, seed=1):
    rng = np.random.default_rng(seed)
    if cls.output_kind == "vector":
        return rng.integers(0, case["num_classes"], size=(batch,))
    shape = window_output(cls, case["window"], params)
    return rng.integers(0, case["num_classes"], size=(batch, *shape))


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_contract(name, tmp_path):
    import keras

    case = CASES[name]
    cls, model = _build(name, case)
    params = dict(case["params"])
    assert window_error(cls, case["window"], params) is None
    if case.get("invalid") is not None:
        message = window_error(cls, case["invalid"], params)
        assert message and "try" in message, message

    x = _batch(case)
    y = np.asarray(model(x, training=False))
    if cls.output_kind == "vector":
        assert y.shape == (2, case["num_classes"])
    else:
        assert y.shape == (2, *window_output(cls, case["window"], params), case["num_classes"])
    assert y.dtype == np.float32 and np.all(np.isfinite(y))

    config = model.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config

    names = [layer.name for layer in model._flatten_layers(include_self=False, recursive=True)]
    assert len(names) == len(set(names)), "every layer has its own name"

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_network_training_step_lowers_loss(name):
    import keras
    import tensorflow as tf

    case = CASES[name]
    keras.utils.set_random_seed(0)
    cls, model = _build(name, case)
    x = tf.constant(_batch(case))
    target = tf.constant(_targets(cls, case, dict(case["params"])))
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def evaluate():  # training mode: batch statistics, as the steps see them
        logits = model(x, training=True)
        return float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits)))

    before = evaluate()
    for _ in range(10):
        step()
    after = evaluate()
    assert np.isfinite(after) and after < before, (before, after)
