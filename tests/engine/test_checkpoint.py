import logging

import keras
import numpy as np
import pytest

from niftykit.engine.checkpoint import (Checkpointer, TrainingState, check_checkpoint,
                                        find_checkpoint, restore_weights, weights_by_path)
from niftykit.errors import ConfigError, NiftykitError


def _model(units=3):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(units, name="encoder")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden), name="network")
    return model


def _checkpointer(model_dir, model=None, keep=2, state=None):
    model = model or _model()
    optimiser = keras.optimizers.Adam(0.1)
    optimiser.build(model.trainable_variables)
    return Checkpointer(model_dir, model, optimiser, keep, state), model


def _fill(model, value):
    for variable in model.variables:
        variable.assign(np.full(variable.shape, value, "float32"))


def test_rotation_keeps_the_newest_and_best_apart(tmp_path):
    ckpt, model = _checkpointer(tmp_path)
    for iteration in (1, 2, 3):
        _fill(model, iteration)
        ckpt.save(iteration)
        if iteration == 1:
            ckpt.save_best(1)
    assert ckpt.iterations() == [2, 3]
    assert not (tmp_path / "models" / "model.ckpt-1.index").exists()
    assert (tmp_path / "models" / "best" / "model.ckpt-1.index").exists()
    assert check_checkpoint(tmp_path, "best") == 1 and check_checkpoint(tmp_path) == 3
    assert not list((tmp_path / "models").glob("*temp*"))  # written via temporaries, renamed
    fresh, again = _checkpointer(tmp_path)
    assert fresh.restore("best") == 1
    assert float(again.variables[0].numpy().ravel()[0]) == 1.0


def test_corrupt_latest_falls_back_to_the_previous(tmp_path, caplog):
    ckpt, model = _checkpointer(tmp_path, keep=3)
    for iteration in (1, 2):
        _fill(model, iteration)
        ckpt.save(iteration)
    data = tmp_path / "models" / "model.ckpt-2.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:20])  # truncated, as after a crash
    fresh, again = _checkpointer(tmp_path, keep=3)
    with pytest.raises(NiftykitError, match="model.ckpt-2 is unreadable"):
        fresh.restore(2)
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        assert fresh.restore(-1) == 1
    assert "model.ckpt-2 is unreadable" in caplog.text
    assert float(again.variables[0].numpy().ravel()[0]) == 1.0
    # the unreadable one is set aside, out of the rotation
    assert fresh.iterations() == [1] and check_checkpoint(tmp_path) == 1
    assert (tmp_path / "models" / "unreadable" / data.name).exists()


def test_every_checkpoint_unreadable(tmp_path):
    ckpt, _ = _checkpointer(tmp_path)
    ckpt.save(5)
    (tmp_path / "models" / "model.ckpt-5.index").write_bytes(b"junk")
    with pytest.raises(NiftykitError, match="no readable checkpoint"):
        _checkpointer(tmp_path)[0].restore(-1)


def test_state_travels_with_the_checkpoint(tmp_path):
    state = TrainingState()
    assert state.record(10, 0.5) and not state.record(20, 0.7) and state.record(30, 0.4)
    assert state.best() == (30, pytest.approx(0.4)) and state.history() == [0.5, 0.7, 0.4]
    ckpt, _ = _checkpointer(tmp_path, state=state)
    ckpt.save(30)
    restored = TrainingState()
    _checkpointer(tmp_path, state=restored)[0].restore(-1)
    assert restored.history() == pytest.approx([0.5, 0.7, 0.4]) and restored.best()[0] == 30


def test_partial_restore_and_finding_a_source(tmp_path):
    ckpt, model = _checkpointer(tmp_path / "source")
    _fill(model, 7.0)
    ckpt.save(40)
    prefix, iteration = find_checkpoint(tmp_path / "source")  # a model_dir
    assert iteration == 40 and prefix.endswith("model.ckpt-40")
    assert find_checkpoint(tmp_path / "source" / "models" / "model.ckpt-40")[1] == 40
    target = _model()
    _fill(target, 0.0)
    head = {k: v for k, v in weights_by_path(target).items() if k.startswith("head.")}
    assert len(head) == 2
    restore_weights(prefix, head, "vars_to_restore")
    assert all(np.all(v.numpy() == 7.0) for v in head.values())
    assert all(np.all(v.numpy() == 0.0) for k, v in weights_by_path(target).items() if k not in head)
    wider = _model(units=5)
    with pytest.raises(ConfigError, match=r"\[training\] vars_to_restore: .* encoder/kernel "
                                          r"is \(4, 3\) there, \(4, 5\) here"):
        restore_weights(prefix, weights_by_path(wider), "vars_to_restore")
    with pytest.raises(NiftykitError, match="no readable checkpoint"):
        find_checkpoint(tmp_path / "nowhere")
