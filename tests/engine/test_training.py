"""The training loop's options end to end through the CLI, on 16^3 volumes with a tiny ToyNet."""

import contextlib
import io
import shutil

import numpy as np
import pytest
import tensorflow as tf

from niftykit.cli import main
from niftykit.config import load_config
from niftykit.data import make_shapes

TINY = ("--set", "network.name=toynet", "--set", "network.params={n_features: 4}",
        "--set", "network.batch_size=2", "--set", "network.queue_length=4",
        "--set", "training.sample_per_volume=2")


def _train(config_args, data, model, *extra):
    """Run ``niftykit train``; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["train", *config_args(data, model, *TINY, *extra)])
    return status, out.getvalue(), err.getvalue()


def _tensors(prefix):
    return {name: tf.train.load_checkpoint(prefix).get_tensor(name)
            for name, _ in tf.train.list_variables(prefix) if name.startswith("weights/")}


@pytest.fixture(scope="module")
def run(tmp_path_factory, config_args):
    """8 iterations: 3 training subjects, 1 validation, every option of the loop switched on."""
    root = tmp_path_factory.mktemp("loop")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=5, shape=(16, 16, 16), seed=2)
    status, out, err = _train(
        config_args, data, model, "--max_iter", "8", "--validation_every_n", "2",
        "--save_every_n", "2", "--max_checkpoints", "2", "--tensorboard_every_n", "4",
        "--log_every_n", "4", "--lr_schedule", "cosine", "--lr_warmup_iters", "2",
        "--optimiser", "adamw", "--weight_decay", "0.0001", "--gradient_clip_norm", "1.0")
    assert status == 0, err
    return data, model, out


def test_rotation_best_checkpoint_and_resolved_config(run):
    _, model, _ = run
    models = model / "models"
    assert sorted(p.name for p in models.glob("*.index")) == ["model.ckpt-6.index",
                                                             "model.ckpt-8.index"]
    assert len(list((models / "best").glob("model.ckpt-*.index"))) == 1
    saved = load_config(model / "config.yaml")
    assert saved.training.lr_schedule == "cosine" and saved.training.max_iter == 8
    assert saved.training.optimiser == "adamw" and saved.system.model_dir == model


def test_progress_lines_and_final_summary(run):
    _, model, out = run
    assert "training iter 1, loss=" in out and "(1/8, timing...)" in out
    line4 = next(line for line in out.splitlines() if line.startswith("training iter 4,"))
    assert "lr=0.000933 (4/8, " in line4 and " it/s, ETA 0:00:0" in line4
    assert "    validation iter 2, loss=" in out and "(best so far)" in out
    assert "training finished at iteration 8: 8 iterations in" in out
    assert "  best validation loss " in out and str(model / "models" / "best") in out
    assert f"  checkpoints: {model / 'models'} (iterations 6, 8)" in out
    assert "cosine 0.001 -> 0 by iteration 8, 2 warm-up iterations" in out


def test_tensorboard_scalars_and_image_slices(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    _, model, _ = run
    tags = {}
    for name in ("training", "validation"):
        events = EventAccumulator(str(model / "logs" / name), size_guidance={"tensors": 0})
        events.Reload()
        tags[name] = events
    training = set(tags["training"].Tags()["tensors"])
    assert {"loss", "learning_rate"} <= training
    assert {f"{kind}/{view}" for kind in ("image", "label", "prediction")
            for view in ("axial", "coronal", "sagittal")} <= training
    lr = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in tags["training"].Tensors("learning_rate")}
    assert sorted(lr) == [4, 8] and lr[4] == pytest.approx(0.001 * 0.5 * (1 + np.cos(np.pi / 6)))
    assert [e.step for e in tags["validation"].Tensors("loss")] == [2, 4, 6, 8]


def test_corrupt_latest_checkpoint_resumes_from_the_previous(run, config_args, tmp_path):
    data, model, _ = run
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    latest = copy / "models" / "model.ckpt-8.data-00000-of-00001"
    latest.write_bytes(latest.read_bytes()[:50])
    status, out, err = _train(config_args, data, copy, "--starting_iter", "-1", "--max_iter", "9",
                              "--validation_every_n", "2")
    assert status == 0, err
    assert "warning: checkpoint" in err and "model.ckpt-8 is unreadable" in err
    assert "resumed from the checkpoint of iteration 6" in out and "training iter 7, " in out
    assert (copy / "models" / "model.ckpt-9.index").exists()


def test_transfer_restores_and_freezes_by_pattern(run, config_args, tmp_path):
    data, source, _ = run
    status, out, err = _train(config_args, data, tmp_path / "tuned", "--max_iter", "2",
                              "--validation_every_n", "-1", "--set", f"training.restore_from={source}",
                              "--set", "training.vars_to_restore=classifier",
                              "--set", "training.vars_to_freeze=classifier")
    assert status == 0, err
    assert "vars_to_freeze 'classifier': 2 of 4 trainable variables frozen" in out
    assert "initialised 2 of 4 variables" in out and "model.ckpt-8" in out
    before = _tensors(str(source / "models" / "model.ckpt-8"))
    after = _tensors(str(tmp_path / "tuned" / "models" / "model.ckpt-2"))
    for name in before:
        same = np.array_equal(before[name], after[name])
        assert same == ("classifier" in name), name  # restored and frozen vs fresh and trained

    status, _, err = _train(config_args, data, tmp_path / "bad", "--max_iter", "1",
                            "--set", "training.vars_to_freeze=decoder")
    assert status == 2
    assert "quickstart.yaml: [training] vars_to_freeze: 'decoder' matches none" in err
    status, _, err = _train(config_args, data, tmp_path / "bad", "--set",
                            "training.vars_to_restore=conv")
    assert status == 2 and "vars_to_restore: needs a checkpoint to restore from" in err


def test_early_stopping_with_mixed_float16(run, config_args, tmp_path, monkeypatch):
    from niftykit.engine import early_stopping
    data, _, _ = run
    monkeypatch.setattr(early_stopping, "should_stop", lambda history, mode: "a test reason")
    model = tmp_path / "stopped"
    status, out, err = _train(config_args, data, model, "--max_iter", "20", "--validation_every_n",
                              "2", "--set", "training.early_stopping=true", "--patience", "2",
                              "--set", "network.precision=mixed_float16")
    assert status == 0, err
    assert ("early stopping at iteration 4: a test reason (early_stopping_mode mean, patience 2)"
            in out)
    assert "training stopped early at iteration 4 of 20: 4 iterations" in out
    names = [name for name, _ in tf.train.list_variables(str(model / "models" / "model.ckpt-4"))]
    assert "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE" in names  # loss scaling


def test_exact_resume_ends_with_the_weights_of_an_uninterrupted_run(run, config_args, tmp_path):
    data, _, _ = run
    quiet = ("--validation_every_n", "-1", "--set", "training.exact_resume=true")
    assert _train(config_args, data, tmp_path / "whole", "--max_iter", "4", *quiet)[0] == 0
    assert _train(config_args, data, tmp_path / "parts", "--max_iter", "2", *quiet)[0] == 0
    status, out, _ = _train(config_args, data, tmp_path / "parts", "--max_iter", "4",
                            "--starting_iter", "2", *quiet)
    assert status == 0 and "replaying the windows of iterations 1..2" in out
    whole = _tensors(str(tmp_path / "whole" / "models" / "model.ckpt-4"))
    parts = _tensors(str(tmp_path / "parts" / "models" / "model.ckpt-4"))
    for name in whole:  # bit-identical on the development machine
        np.testing.assert_allclose(parts[name], whole[name], rtol=0, atol=1e-7, err_msg=name)
