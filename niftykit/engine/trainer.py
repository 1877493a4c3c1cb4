"""The training loop: a ``tf.function`` step, iteration-based as in NiftyNet.

One iteration = one batch. Console lines follow NiftyNet's
``training iter 10, loss=0.41 (0.812s)``; validation lines are indented.
Checkpoints every ``save_every_n`` iterations and at the end (also on
Ctrl-C), TensorBoard scalars every ``tensorboard_every_n`` under
``<model_dir>/logs/{training,validation}``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Sequence

import numpy as np

from niftykit.engine.checkpoint import Checkpointer
from niftykit.engine.optimiser import make_optimiser
from niftykit.engine.runtime import import_tensorflow, precision_policy, seed_everything
from niftykit.errors import DataError, NiftykitError

__all__ = ["train"]

log = logging.getLogger("niftykit")


class _Errors(list):
    """User errors raised inside the tf.data workers, re-raised by the loop as they were."""

    def next(self, batches: Iterator, tf: Any) -> Any:
        try:
            return next(batches)
        except tf.errors.OpError:
            if self:
                raise self[0] from None
            raise


def _window_source(app: Any, subjects: Sequence[Any], phase: str, seed: int,
                   errors: _Errors) -> Callable:
    """Endless windows from ``subjects`` for worker ``i`` of ``n``; volumes come from the
    application's byte-bounded cache, augmentation and sampling are per draw."""
    def source(worker: int, workers: int) -> Iterator[Mapping[str, np.ndarray]]:
        rng = np.random.default_rng([seed, worker])
        sampler = app.make_sampler(rng, phase)
        mine = list(subjects[worker::workers]) or list(subjects)
        while True:
            for index in rng.permutation(len(mine)):
                try:
                    volumes = app.load_volumes(mine[index], phase)
                except NiftykitError as exc:
                    errors.append(exc)
                    raise
                yield from sampler(volumes)
    return source


def _spec(app: Any, subject: Any) -> Dict[str, tuple]:
    """Window names, shapes and dtypes, read off one sampled window."""
    window = app.make_sampler(np.random.default_rng(0), "validation")(
        app.load_volumes(subject, "training"))[0]
    return {k: (v.shape, v.dtype) for k, v in window.items() if k != "location"}


def _dataset(app: Any, subjects: Sequence[Any], phase: str, spec: Mapping, seed: int,
             errors: _Errors, capacity: int) -> Any:
    from niftykit.sampler.pipeline import window_dataset
    cfg = app.config
    return window_dataset(
        _window_source(app, subjects, phase, seed, errors), spec,
        batch_size=cfg.network.batch_size, capacity=capacity,
        num_workers=min(cfg.system.num_threads, len(subjects)), seed=seed)


def _prepare(app: Any) -> tuple:
    cfg = app.config
    app.make_sampler(np.random.default_rng(0))  # checks the window and augmentation settings
    subjects = app.subjects("training")
    if not subjects:
        raise DataError(f"no training subjects (split file {cfg.system.dataset_split_file})")
    app.prepare("training", subjects)
    validation = app.subjects("validation") if cfg.training.validation_every_n > 0 else []
    if cfg.training.validation_every_n > 0 and not validation:
        log.warning("training.validation_every_n is %d but %s lists no validation subject; "
                    "set training.exclude_fraction_for_validation (and delete the split file) "
                    "to validate", cfg.training.validation_every_n, cfg.system.dataset_split_file)
    return subjects, validation


def _preflight(app: Any, subjects: Sequence[Any], validation: Sequence[Any]) -> None:
    """Read and preprocess every subject once, before anything is built or written, so a
    bad file stops the run at once (not hours in); the volumes stay in the cache."""
    from concurrent.futures import ThreadPoolExecutor
    tic = time.perf_counter()
    jobs = [(s, "training") for s in subjects] + [(s, "validation") for s in validation]
    workers = max(1, min(app.config.system.num_threads, len(jobs)))
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda job: app.load_volumes(*job), jobs):
            pass
    log.info("checked %d subjects in %.1fs", len(jobs), time.perf_counter() - tic)


def _start_iteration(ckpt: Checkpointer, starting_iter: int, overwrite: bool) -> int:
    latest = ckpt.latest()
    if starting_iter == 0 and latest is not None:
        if not overwrite:
            raise NiftykitError(
                f"{ckpt.directory} already has checkpoints (latest: iter {latest}); resume with "
                f"--starting_iter {latest}, or pass --overwrite to train afresh")
        ckpt.clear()
        return 0
    if starting_iter != 0:
        return ckpt.restore(starting_iter)
    return 0


def train(app: Any, *, overwrite: bool = False, debug: bool = False) -> Path:
    """Train ``app``'s network; returns the folder of the checkpoints.

    Raises:
        NiftykitError: bad data, existing checkpoints without ``overwrite``,
            or a loss that became NaN.
    """
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    seed_everything(cfg.system.seed)
    subjects, validation = _prepare(app)
    _preflight(app, subjects, validation)
    spec = _spec(app, subjects[0])
    from niftykit.sampler.pipeline import plan_queue
    queue = plan_queue(spec, queue_mb=cfg.system.queue_size_mb,
                       queue_length=cfg.network.queue_length,
                       samples_per_volume=cfg.training.sample_per_volume,
                       batch_size=cfg.network.batch_size)
    log.info("training on %d subjects (%d for validation); windows %s; %s", len(subjects),
             len(validation), {k: list(s) for k, (s, _) in spec.items()}, queue.describe())
    errors = _Errors()
    batches = iter(_dataset(app, subjects, "training", spec, cfg.system.seed, errors,
                            queue.capacity))
    val_batches = (iter(_dataset(app, validation, "validation", spec, cfg.system.seed + 1, errors,
                                 max(cfg.network.batch_size, cfg.network.queue_length)))
                   if validation else None)
    with precision_policy(cfg.network.precision):
        model = app.build_network()
        model({k: tf.zeros((1,) + tuple(s), dtype=d) for k, (s, d) in spec.items()}["image"])
    optimiser = make_optimiser(cfg.training.optimiser, cfg.training.lr)
    ckpt = Checkpointer(cfg.system.model_dir, model, optimiser, cfg.training.max_checkpoints)
    start = _start_iteration(ckpt, cfg.training.starting_iter, overwrite)
    log.info("network %s: %d parameters; iterations %d..%d", cfg.network.name,
             model.count_params(), start + 1, cfg.training.max_iter)
    _loop(app, model, optimiser, ckpt, (batches, val_batches, errors), start, tf)
    return ckpt.directory


def _steps(app: Any, model: Any, optimiser: Any, tf: Any) -> tuple:
    @tf.function
    def train_step(batch: Mapping[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            outputs = model(batch["image"], training=True)
            loss = app.loss(outputs, batch)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        grads = tape.gradient(total, model.trainable_variables)
        optimiser.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def eval_step(batch: Mapping[str, Any]) -> Any:
        return app.loss(model(batch["image"], training=False), batch)
    return train_step, eval_step


def _loop(app: Any, model: Any, optimiser: Any, ckpt: Checkpointer, streams: tuple,
          start: int, tf: Any) -> None:
    cfg = app.config.training
    batches, val_batches, errors = streams
    logs = Path(app.config.system.model_dir) / "logs"
    writers = {name: tf.summary.create_file_writer(str(logs / name))
               for name in ("training", "validation")}
    train_step, eval_step = _steps(app, model, optimiser, tf)
    iteration = start
    try:
        for iteration in range(start + 1, cfg.max_iter + 1):
            tic = time.perf_counter()
            loss = float(train_step(errors.next(batches, tf)))
            if not math.isfinite(loss):
                raise NiftykitError(f"loss became {loss} at iteration {iteration}; lower "
                                    f"training.lr (now {cfg.lr}) or check the input intensities")
            seconds = time.perf_counter() - tic
            if iteration == start + 1 or iteration % 10 == 0 or iteration == cfg.max_iter:
                log.info("training iter %d, loss=%.4f (%.3fs)", iteration, loss, seconds)
            if cfg.tensorboard_every_n > 0 and iteration % cfg.tensorboard_every_n == 0:
                with writers["training"].as_default():
                    tf.summary.scalar("loss", loss, step=iteration)
            if val_batches is not None and iteration % cfg.validation_every_n == 0:
                _validate(eval_step, lambda: errors.next(val_batches, tf),
                          cfg.validation_max_iter, iteration, writers["validation"], tf)
            if cfg.save_every_n > 0 and iteration % cfg.save_every_n == 0:
                ckpt.save(iteration)
    except KeyboardInterrupt:
        if iteration > start + 1:
            log.warning("interrupted; saved %s", ckpt.save(iteration - 1))
        raise
    finally:
        for writer in writers.values():
            writer.close()
    if iteration > start and iteration not in ckpt.iterations():
        log.info("saved %s", ckpt.save(iteration))


def _validate(eval_step: Callable, next_batch: Callable, n: int, iteration: int, writer: Any,
              tf: Any) -> float:
    tic = time.perf_counter()
    losses: List[float] = [float(eval_step(next_batch())) for _ in range(max(1, n))]
    loss = float(np.mean(losses))
    log.info("    validation iter %d, loss=%.4f (%.3fs)", iteration, loss, time.perf_counter() - tic)
    with writer.as_default():
        tf.summary.scalar("loss", loss, step=iteration)
    return loss
