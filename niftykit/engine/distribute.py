"""The ``tf.distribute`` strategy of a run (``system.strategy``) and its input pipelines.

================  ==========================================================================
``default``       TensorFlow's default strategy: one device, the first GPU if there is one.
``mirrored``      ``MirroredStrategy``: synchronous data parallelism over the local devices:
                  every visible GPU (``cuda_devices`` chooses which are visible; ``num_gpus``
                  above 1 takes the first ``num_gpus``), or without a GPU ``cpu_replicas``
                  logical CPU devices (useful for tests; no faster than one CPU device).
``multi_worker``  ``MultiWorkerMirroredStrategy``: the same over several processes, usually
                  one per machine, each with its local GPUs (or one CPU device). The cluster
                  is ``system.workers`` (``host:port`` each) with this process at
                  ``system.worker_index``, or else the ``TF_CONFIG`` environment variable;
                  ``communication`` picks the collectives (``auto``, ``ring``, ``nccl``).
================  ==========================================================================

``network.batch_size`` is per replica: a step trains on ``batch_size`` × replicas windows and
the loss is their mean. As in NiftyNet, ``num_gpus: 0`` trains on the CPU and ``num_gpus`` above
1 with the default strategy mirrors over that many GPUs.

Every input pipeline (one per worker) draws its own windows from its own seeded stream
(:func:`pipeline_seed`) and feeds its local replicas in turn; nothing is sharded by file, so a
generator dataset never meets tf.data's auto-sharding. The step (:func:`replica_steps`) runs
each replica's part under ``strategy.run``: Keras 3's ``model.fit`` crashes under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), the engine's own loop does not. Only
the chief (:func:`is_chief`) writes to ``model_dir``; the other workers save to a temporary
folder (:func:`scratch_folder`, :func:`checkpointers`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from niftykit.engine.checkpoint import Checkpointer, TrainingState
from niftykit.engine.runtime import accurate_bias_gradient
from niftykit.errors import ConfigError

__all__ = ["make_strategy", "mirrored_devices", "is_chief", "local_replicas", "pipeline_seed",
           "distributed_batches", "scratch_folder", "checkpointers", "replica_steps"]

log = logging.getLogger("niftykit")


def make_strategy(system: Any, tf: Any) -> Any:
    """The strategy of ``system`` (the config's ``system`` section); call it before any other
    TensorFlow work, as logical devices and collectives can only be set up before TensorFlow
    starts its runtime.

    Raises:
        ConfigError: an impossible device count or a bad cluster (names the key).
    """
    if system.strategy == "multi_worker":
        return _multi_worker(system, tf)
    if system.num_gpus == 0:
        _hide_gpus(tf)
    gpus = len(tf.config.list_physical_devices("GPU"))
    if system.strategy == "default" and not (system.num_gpus > 1 and gpus):
        if system.num_gpus > 1:
            log.warning("system.num_gpus is %d but no GPU is visible; training on the CPU",
                        system.num_gpus)
        return tf.distribute.get_strategy()
    devices = mirrored_devices(gpus, system.num_gpus, system.cpu_replicas)
    if devices[0].startswith("/cpu") and len(devices) > 1:
        _logical_cpus(len(devices), tf)
    strategy = tf.distribute.MirroredStrategy(devices)
    log.info("mirrored strategy over %s", ", ".join(devices))
    return strategy


def mirrored_devices(gpus: int, num_gpus: int, cpu_replicas: int) -> List[str]:
    """The devices ``mirrored`` spreads over, given the number of visible GPUs.

    Raises:
        ConfigError: ``num_gpus`` asks for more GPUs than are visible.
    """
    if gpus and num_gpus != 0:
        wanted = gpus if num_gpus <= 1 else num_gpus
        if wanted > gpus:
            raise ConfigError(f"[system] num_gpus: {num_gpus} but {gpus} GPU(s) are visible "
                              "(system.cuda_devices / CUDA_VISIBLE_DEVICES)")
        return [f"/gpu:{i}" for i in range(wanted)]
    return [f"/cpu:{i}" for i in range(cpu_replicas)]


def _hide_gpus(tf: Any) -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already started in this process: keep what it has
        if tf.config.list_logical_devices("GPU"):
            log.warning("system.num_gpus is 0 but TensorFlow has already started with a GPU")


def _logical_cpus(count: int, tf: Any) -> None:
    """Split the CPU into ``count`` logical devices (possible only before TensorFlow starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < count:
            raise ConfigError(f"[system] cpu_replicas: {count} logical CPU devices are needed "
                              f"but TensorFlow already started in this process with {have}; "
                              "run `niftykit train` in a fresh process") from None


def _cluster(system: Any) -> dict:
    """The ``TF_CONFIG`` of ``system.workers`` and ``system.worker_index``."""
    for address in system.workers:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"[system] workers: '{address}' is not host:port "
                              "(e.g. 10.0.0.1:12345)")
    if system.worker_index >= len(system.workers):
        raise ConfigError(f"[system] worker_index: {system.worker_index} but system.workers "
                          f"lists {len(system.workers)} (worker_index counts from 0)")
    return {"cluster": {"worker": list(system.workers)},
            "task": {"type": "worker", "index": int(system.worker_index)}}


def _multi_worker(system: Any, tf: Any) -> Any:
    if system.workers:
        if os.environ.get("TF_CONFIG"):
            log.warning("system.workers is set: the TF_CONFIG environment variable is ignored")
        spec = _cluster(system)
    elif os.environ.get("TF_CONFIG"):
        try:
            spec = json.loads(os.environ["TF_CONFIG"])
        except ValueError as exc:
            raise ConfigError(f"[system] strategy: multi_worker: TF_CONFIG is not JSON: {exc}") \
                from None
    else:
        raise ConfigError("[system] strategy: multi_worker needs the cluster: set system.workers "
                          "(host:port of every worker) and system.worker_index, or the "
                          "TF_CONFIG environment variable")
    task = spec.get("task", {})
    if task.get("type") not in ("worker", "chief") or not spec.get("cluster"):
        raise ConfigError("[system] strategy: multi_worker: TF_CONFIG needs a cluster and a task "
                          f"of type 'worker' or 'chief', got {json.dumps(spec)}")
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(spec["cluster"]), task_type=task["type"],
        task_id=int(task.get("index", 0)), rpc_layer="grpc")
    implementation = getattr(tf.distribute.experimental.CommunicationImplementation,
                             system.communication.upper())
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver,
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))
    log.info("multi-worker strategy: %s %d of %s, %d replicas in all%s", task["type"],
             int(task.get("index", 0)), json.dumps(spec["cluster"]),
             strategy.num_replicas_in_sync, " (chief)" if is_chief(strategy) else "")
    return strategy


def is_chief(strategy: Any) -> bool:
    """True for the process that writes checkpoints, TensorBoard logs and ``config.yaml``:
    the only one, or under ``multi_worker`` the ``chief`` task (else worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().jobs
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs


def local_replicas(strategy: Any) -> int:
    """The replicas of this process, which its input pipeline feeds."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return strategy.num_replicas_in_sync
    spec = resolver.cluster_spec()
    workers = sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs)
    return max(1, strategy.num_replicas_in_sync // max(1, workers))


def pipeline_seed(seed: int, pipeline: int) -> int:
    """The window-stream seed of input pipeline ``pipeline`` (one per worker): ``seed`` itself
    for the first, so that one process draws what a default run draws; independent streams
    (NumPy's ``SeedSequence``) for the others."""
    if pipeline == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(pipeline)]).generate_state(1)[0])


def distributed_batches(strategy: Any, batches: Callable[[int], Any], skip: int = 0) -> Any:
    """The batches of every replica, each ``batches(pipeline)``'s batch in turn.

    Args:
        strategy: the run's strategy.
        batches: builds input pipeline ``pipeline``'s ``tf.data`` dataset of per-replica
            batches (there is one pipeline per worker).
        skip: iterations whose batches are drawn and dropped first (exact resume).

    Returns:
        The dataset itself under a single-replica strategy, else a distributed dataset.
    """
    if strategy.num_replicas_in_sync == 1 and getattr(strategy, "cluster_resolver", None) is None:
        dataset = batches(0)
        return dataset.skip(skip) if skip else dataset

    def pipeline(context: Any) -> Any:
        import tensorflow as tf
        local = context.num_replicas_in_sync // context.num_input_pipelines
        dataset = batches(context.input_pipeline_id)
        options = tf.data.Options()  # a generator has no files to shard; each worker feeds itself
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
        return dataset.skip(skip * local) if skip else dataset
    return strategy.distribute_datasets_from_function(pipeline)


def scratch_folder(stack: contextlib.ExitStack, keep: bool = False) -> Path:
    """A temporary folder for what a worker other than the chief writes; deleted when
    ``stack`` closes, unless ``keep`` (``--debug``: to compare its weights with the chief's)."""
    folder = Path(tempfile.mkdtemp(prefix="niftykit-worker-"))
    if keep:
        log.info("worker checkpoints and logs in %s (kept: --debug)", folder)
    else:
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return folder


def checkpointers(model_dir: Path, model: Any, optimiser: Any, max_to_keep: int,
                  scratch: Optional[Path], afresh: bool) -> Tuple[Checkpointer, Checkpointer]:
    """(the checkpointer a run saves with, the one it starts from), sharing one loop state.

    The chief (``scratch`` None) uses ``model_dir`` for both. Another worker saves to its
    ``scratch`` folder, as TensorFlow recommends for MultiWorkerMirroredStrategy, but checks
    and resumes from the chief's ``model_dir``, unless the run starts ``afresh``
    (``starting_iter: 0`` with ``--overwrite``: the chief alone clears ``model_dir``). Call
    outside the strategy's scope: the loop state is the process's own, not mirrored.
    """
    state = TrainingState()
    own = Checkpointer(model_dir, model, optimiser, max_to_keep, state)
    if scratch is None:
        return own, own
    spare = Checkpointer(scratch, model, optimiser, max_to_keep, state)
    return spare, (spare if afresh else own)


def replica_steps(loss_fn: Callable[[Any, Mapping[str, Any]], Any], model: Any, optimiser: Any,
                  updated: Sequence[Any], strategy: Any, clip_norm: float, tf: Any) -> tuple:
    """The training and validation steps (``tf.function``, of a batch distributed or not):
    each replica's work under ``strategy.run``, the losses averaged over the replicas.

    Args:
        loss_fn: ``(network outputs, batch) -> scalar`` mean loss of a batch.
        model: the network, built in ``strategy``'s scope.
        optimiser: its optimiser, built on ``updated``; it sums the replicas' gradients.
        updated: the variables trained.
        strategy: the run's strategy.
        clip_norm: clip the summed gradients to this global norm here (0: off). With several
            replicas Keras' ``global_clipnorm`` would clip each replica's part before the sum.
        tf: the TensorFlow module.

    Returns:
        ``train_step(batch) -> (mean loss, network outputs of the first window)`` and
        ``eval_step(batch) -> mean loss``.
    """
    accurate_bias_gradient(tf)  # TensorFlow's own sums bfloat16 in bfloat16
    replicas = strategy.num_replicas_in_sync
    mean = tf.distribute.ReduceOp.MEAN

    def train_replica(batch: Mapping[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            outputs = model(batch["image"], training=True)
            loss = loss_fn(outputs, batch)
            total = loss
            if model.losses:
                total += tf.add_n([tf.cast(extra, loss.dtype) for extra in model.losses])
            if replicas > 1:
                total /= replicas  # the optimiser sums the replicas' gradients
            scaled = optimiser.scale_loss(total)  # mixed_float16: LossScaleOptimizer's scale
        grads = tape.gradient(scaled, updated)
        if clip_norm:
            grads = _clipped(grads, clip_norm * optimiser.scale_loss(1.0), replicas, tf)
        optimiser.apply_gradients(zip(grads, updated))
        return loss, outputs[:1]

    @tf.function
    def train_step(batch: Mapping[str, Any]) -> Any:
        loss, outputs = strategy.run(train_replica, args=(batch,))
        return (strategy.reduce(mean, loss, axis=None),
                strategy.experimental_local_results(outputs)[0])

    @tf.function
    def eval_step(batch: Mapping[str, Any]) -> Any:
        loss = strategy.run(lambda b: loss_fn(model(b["image"], training=False), b),
                            args=(batch,))
        return strategy.reduce(mean, loss, axis=None)
    return train_step, eval_step


def _clipped(grads: List[Any], clip_norm: Any, replicas: int, tf: Any) -> List[Any]:
    """Each replica's share of the summed gradients, clipped by their global norm (Keras'
    ``global_clipnorm`` of a single device)."""
    present = [i for i, grad in enumerate(grads) if grad is not None]
    summed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
    clipped, _ = tf.clip_by_global_norm(summed, clip_norm)
    shares = list(grads)
    for i, grad in zip(present, clipped):
        shares[i] = grad / replicas
    return shares
