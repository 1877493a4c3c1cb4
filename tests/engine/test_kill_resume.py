"""A training run killed with SIGKILL mid-way and resumed (``--starting_iter -1`` with
``training.exact_resume``) ends with the weights of a run that was never interrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from niftykit.data import make_shapes

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "network.name=toynet", "--set", "network.params={n_features: 4}",
        "--set", "network.batch_size=2", "--set", "network.queue_length=4",
        "--set", "training.sample_per_volume=2", "--set", "training.exact_resume=true",
        "--validation_every_n", "-1", "--save_every_n", "5", "--max_iter", "30",
        "--set", "training.tensorboard_every_n=-1"]


def _command(config_args, data, model, *extra):
    return [sys.executable, "-m", "niftykit", "train", *config_args(data, model, *TINY, *extra)]


def _weights(prefix):
    return {name: tf.train.load_checkpoint(prefix).get_tensor(name)
            for name, _ in tf.train.list_variables(prefix) if name.startswith("weights/")}


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, config_args):
    data = tmp_path / "data"
    make_shapes(data, n_subjects=4, shape=(16, 16, 16), seed=5)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    whole = tmp_path / "whole"
    subprocess.run(_command(config_args, data, whole), check=True, cwd=ROOT, env=env,
                   capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(config_args, data, killed, "--set",
                                     "training.save_every_n=5"),
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:  # kill it as soon as a mid-way checkpoint exists, before the run can finish
        while not (killed / "models" / "model.ckpt-10.index").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "models" / "model.ckpt-30.index").exists()

    resumed = subprocess.run(_command(config_args, data, killed, "--starting_iter", "-1"),
                             cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "replaying the windows of iterations 1.." in resumed.stdout
    a = _weights(str(whole / "models" / "model.ckpt-30"))
    b = _weights(str(killed / "models" / "model.ckpt-30"))
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-7, err_msg=name)
