"""Distribution: the strategy from the config, mirrored = default, workers in lockstep.

The training runs are ``python -m niftykit train`` subprocesses on 16^3 volumes with a tiny
ToyNet: logical CPU devices and collectives can only be set up before TensorFlow starts,
once per process.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from niftykit.config import check_supported, load_config
from niftykit.config.sections import SystemConfig
from niftykit.data import make_shapes
from niftykit.engine.distribute import (is_chief, local_replicas, make_strategy,
                                        mirrored_devices, pipeline_seed)
from niftykit.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = ("--set", "network.name=toynet", "--set", "network.params={n_features: 4}",
        "--set", "network.queue_length=4", "--set", "training.sample_per_volume=2",
        "--set", "system.num_threads=1")
# SGD, not Adam: Adam's update hardly changes when every gradient is scaled, so it would
# hide a loss that is not divided by the number of replicas. The gradient norms of these runs
# are 0.17-0.20: clipping at 0.185 cuts some steps and not others, so that both a missing
# division (every step cut) and clipping per replica (no step cut) change the curve.
SGD = ("--optimiser", "gradientdescent", "--lr", "0.5", "--gradient_clip_norm", "0.185")


def _environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp_path))
    return env


def _start(config_args, data, model, tmp_path, name, *extra):
    """``python -m niftykit train`` in a new process, its output in ``<name>.out`` / ``.err``
    in ``tmp_path``."""
    command = [sys.executable, "-m", "niftykit", "train",
               *config_args(data, model, *TINY, "--overwrite", *extra)]
    log = tmp_path / f"{name}.out"
    with open(log, "w") as out, open(log.with_suffix(".err"), "w") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=_environment(tmp_path))
    process.log = log
    return process


def _finish(*processes, timeout=150):
    """The standard output of each process, once all have ended; a process that fails (or
    overruns) stops the others, which would otherwise wait for it."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            for p in processes:
                if p.poll() not in (None, 0):
                    err = p.log.with_suffix(".err").read_text()
                    raise AssertionError(f"exit status {p.returncode}: {err[-3000:]}")
            time.sleep(0.2)
        for p in processes:
            err = p.log.with_suffix(".err").read_text()
            assert p.returncode == 0, f"exit status {p.returncode}: {err[-3000:]}"
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [p.log.read_text() for p in processes]


def _weights(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("weights/")}


def _summaries(folder, tag):
    """step -> value of TensorBoard tag ``tag`` in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: tf.make_ndarray(e.tensor_proto) for e in events.Tensors(tag)}


def _scalars(folder, tag="loss"):
    return {step: float(value) for step, value in _summaries(folder, tag).items()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distribute") / "data"
    make_shapes(folder, n_subjects=5, shape=(16, 16, 16), seed=3)
    return folder


def test_mirrored_on_two_cpus_follows_the_default_loss_curve(data, tmp_path, config_args):
    """Same global batch (4 windows: 4 on one device, 2 on each of 2), same windows, same
    start: only the order of float32 sums differs (two half-batch gradients summed, not one
    batch). Measured over 8 steps: losses within 1.2e-7, weights within 4e-7, so the bound
    is 1e-5. The bugs this guards against are 10-100x larger: a loss not divided by the
    replicas moves the losses by 1e-3 from step 2; clipping per replica by 4e-5 at step 3,
    6e-4 at step 5, 3e-3 at step 8."""
    runs = {"default": ("--set", "network.batch_size=4"),
            "mirrored": ("--set", "network.batch_size=2", "--set", "system.strategy=mirrored",
                         "--set", "system.cpu_replicas=2")}
    common = ("--max_iter", "8", "--tensorboard_every_n", "1", "--validation_every_n", "4",
              "--log_every_n", "4", *SGD)
    processes = [_start(config_args, data, tmp_path / name, tmp_path, name, *common, *extra)
                 for name, extra in runs.items()]
    logs = dict(zip(runs, _finish(*processes)))
    assert "mirrored strategy over /cpu:0, /cpu:1" in logs["mirrored"]
    losses = {name: _scalars(tmp_path / name / "logs" / "training") for name in runs}
    assert sorted(losses["default"]) == list(range(1, 9))
    assert losses["default"][8] < losses["default"][1] - 0.01  # it learns
    for step, loss in losses["default"].items():
        assert losses["mirrored"][step] == pytest.approx(loss, abs=1e-5), step
    checked = {name: _scalars(tmp_path / name / "logs" / "validation") for name in runs}
    assert checked["mirrored"][4] == pytest.approx(checked["default"][4], abs=1e-5)
    default = _weights(tmp_path / "default" / "models" / "model.ckpt-8")
    mirrored = _weights(tmp_path / "mirrored" / "models" / "model.ckpt-8")
    assert default.keys() == mirrored.keys() and default
    for name, value in default.items():
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(mirrored[name], value, rtol=0, atol=1e-5 * scale,
                                   err_msg=name)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_end_with_identical_weights(data, tmp_path, config_args):
    """MultiWorkerMirroredStrategy over 2 processes on 127.0.0.1 (system.workers): each draws
    its own windows, the gradients are all-reduced, so both hold the same weights, bit for
    bit; only the chief writes model_dir (worker 1 keeps its checkpoints and logs in TMPDIR
    with --debug). TensorFlow may log an UNAVAILABLE heartbeat error on the chief when the
    other worker exits first (tensorflow/tensorflow#58434); the exit status is 0."""
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    common = ("--max_iter", "4", "--tensorboard_every_n", "2", "--validation_every_n", "2",
              "--set", f"system.workers=[{workers}]", "--set", "system.strategy=multi_worker",
              "--set", "network.batch_size=2", *SGD)
    model = tmp_path / "model"
    chief = _start(config_args, data, model, tmp_path, "worker0", *common, "--worker_index", "0")
    other = _start(config_args, data, model, tmp_path, "worker1", *common, "--worker_index", "1",
                   "--debug")
    logs = _finish(chief, other)
    assert "(chief)" in logs[0] and "(chief)" not in logs[1]
    assert "2 replicas in all" in logs[0]
    kept = next(line for line in logs[1].splitlines() if "(kept: --debug)" in line)
    scratch = kept.split(" in ")[1].split(" (kept")[0]
    assert sorted(p.name for p in (model / "models").glob("*.index")) == ["model.ckpt-4.index"]
    assert (model / "config.yaml").exists() and any((model / "logs" / "training").iterdir())
    first = _weights(model / "models" / "model.ckpt-4")
    second = _weights(f"{scratch}/models/model.ckpt-4")
    assert first.keys() == second.keys() and first
    for name, value in first.items():
        np.testing.assert_array_equal(second[name], value, err_msg=name)
    assert "worker finished at iteration 4" in logs[1]
    # each worker trained on its own windows (the first window of its batch at iteration 2)
    slices = [_summaries(folder / "logs" / "training", "image/axial")[2][2]
              for folder in (model, Path(scratch))]
    assert slices[0] != slices[1]
    assert _scalars(Path(scratch) / "logs" / "training") == _scalars(model / "logs" / "training")


# -- the strategy from the config, in this process ------------------------------------------

def test_mirrored_devices():
    assert mirrored_devices(gpus=4, num_gpus=1, cpu_replicas=1) == [f"/gpu:{i}" for i in range(4)]
    assert mirrored_devices(gpus=4, num_gpus=2, cpu_replicas=1) == ["/gpu:0", "/gpu:1"]
    assert mirrored_devices(gpus=4, num_gpus=0, cpu_replicas=2) == ["/cpu:0", "/cpu:1"]
    assert mirrored_devices(gpus=0, num_gpus=1, cpu_replicas=3) == ["/cpu:0", "/cpu:1", "/cpu:2"]
    with pytest.raises(ConfigError, match=r"\[system\] num_gpus: 3 but 2 GPU\(s\) are visible"):
        mirrored_devices(gpus=2, num_gpus=3, cpu_replicas=1)


def test_pipeline_seeds():
    assert pipeline_seed(7, 0) == 7
    seeds = {pipeline_seed(7, i) for i in range(1, 5)} | {pipeline_seed(8, 1)}
    assert len(seeds) == 5 and 7 not in seeds and 8 not in seeds
    assert pipeline_seed(7, 1) == pipeline_seed(7, 1)


def test_default_strategy_is_the_one_device_one():
    strategy = make_strategy(SystemConfig(), tf)
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1 and local_replicas(strategy) == 1
    assert is_chief(strategy)


@pytest.mark.parametrize("keys, message", [
    ({}, "multi_worker needs the cluster: set system.workers"),
    ({"workers": ("127.0.0.1:1", "nohost")}, "workers: 'nohost' is not host:port"),
    ({"workers": ("127.0.0.1:1",), "worker_index": 1}, "worker_index: 1 but system.workers"),
])
def test_multi_worker_cluster_errors(monkeypatch, keys, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    system = SystemConfig(strategy="multi_worker", **keys)
    with pytest.raises(ConfigError, match=message):
        make_strategy(system, tf)


def test_multi_worker_rejects_a_bad_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps"}}')
    with pytest.raises(ConfigError, match="task of type 'worker' or 'chief'"):
        make_strategy(SystemConfig(strategy="multi_worker"), tf)
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(ConfigError, match="TF_CONFIG is not JSON"):
        make_strategy(SystemConfig(strategy="multi_worker"), tf)


def test_chief_is_the_chief_task_or_worker_0():
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver

    class Strategy:
        def __init__(self, cluster, task_type, task_id):
            self.cluster_resolver = resolver(tf.train.ClusterSpec(cluster), task_type=task_type,
                                             task_id=task_id)
            self.num_replicas_in_sync = 4

    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(Strategy(workers, "worker", 0)) and not is_chief(Strategy(workers, "worker", 1))
    assert local_replicas(Strategy(workers, "worker", 1)) == 2
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1", "d:1"]}
    assert is_chief(Strategy(with_chief, "chief", 0))
    assert not is_chief(Strategy(with_chief, "worker", 0))
    assert local_replicas(Strategy(with_chief, "worker", 0)) == 1


def test_distribution_keys_load_and_are_supported():
    config = load_config(CONFIGS / "quickstart.yaml", [
        "system.strategy=multi_worker", "system.workers=[10.0.0.1:2222, 10.0.0.2:2222]",
        "worker_index=1", "system.communication=ring", "system.num_gpus=4",
        "system.cpu_replicas=2"])
    check_supported(config)
    system = config.system
    assert system.workers == ("10.0.0.1:2222", "10.0.0.2:2222") and system.worker_index == 1
    assert (system.strategy, system.communication, system.num_gpus, system.cpu_replicas) == (
        "multi_worker", "ring", 4, 2)
    with pytest.raises(ConfigError, match="communication"):
        load_config(CONFIGS / "quickstart.yaml", ["system.communication=mpi"])


def test_a_lost_worker_stops_the_run_in_one_line_after_saving():
    from types import SimpleNamespace

    from niftykit.engine.trainer import _Run
    saved = []
    chief = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": ["a:1", "b:1"]}), task_type="worker", task_id=0)
    run = SimpleNamespace(strategy=SimpleNamespace(cluster_resolver=chief),
                          ckpt=SimpleNamespace(save=lambda i: saved.append(i) or f"ckpt-{i}"))
    exc = tf.errors.UnavailableError(None, None, (
        "Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
        "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe "
        "tasks have crashed. [[{{node /job:worker/replica:0/task:0/device:CPU:0}}]]"))
    assert str(_Run.lost(run, exc, 41, 0)) == (
        "multi-worker training stopped at iteration 42: /job:worker/replica:0/task:1 stopped "
        "responding; saved ckpt-41; restart every worker with --starting_iter -1")
    assert saved == [41]
    run.strategy.cluster_resolver.task_id = 1  # another worker: its checkpoints are not kept
    assert "saved" not in str(_Run.lost(run, exc, 41, 0)) and saved == [41]
    assert _Run.lost(SimpleNamespace(strategy=SimpleNamespace(), ckpt=None), exc, 41, 0) is exc
