"""The training loop: a ``tf.function`` step, iteration-based as in NiftyNet.

One iteration = one batch. Progress lines follow NiftyNet's ``training iter``
line (``training iter 40, loss=0.41, lr=0.001 (40/300, 12.3 it/s, ETA 0:00:21)``,
every ``training.log_every_n``); validation lines are indented. The resolved
config goes to ``<model_dir>/config.yaml`` at start; checkpoints every
``save_every_n`` iterations and at the end (also on Ctrl-C or an early stop),
the best one (lowest validation loss) apart; TensorBoard scalars and image
slices every ``tensorboard_every_n`` under ``<model_dir>/logs/{training,validation}``;
a summary block at the end. The README's "Training options" lists every key.

The step runs under the ``system.strategy`` of :mod:`niftykit.engine.distribute` (the default
strategy: one device). With several replicas each computes its loss on its own
``batch_size`` windows and the gradients are summed, so the loss is divided by the number of
replicas (the update is that of the mean over the global batch); the logged losses are means
over the replicas. Only the chief writes ``config.yaml``, checkpoints and TensorBoard logs;
the other workers save theirs to a temporary folder, deleted at the end (kept with
``--debug``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from niftykit.engine.checkpoint import Checkpointer
from niftykit.engine.distribute import (checkpointers, distributed_batches, is_chief,
                                        local_replicas, make_strategy, pipeline_seed,
                                        replica_steps, scratch_folder)
from niftykit.engine.early_stopping import EarlyStopper
from niftykit.engine.optimiser import make_optimiser
from niftykit.engine.progress import TrainingProgress, duration
from niftykit.engine.restore import initial_checkpoint, start_iteration
from niftykit.engine.stages import attach_stages
from niftykit.engine.runtime import import_tensorflow, precision_policy, seed_everything
from niftykit.engine.transfer import count, split_frozen
from niftykit.errors import ConfigError, DataError, NiftykitError

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


def _batches(app: Any, subjects: Sequence[Any], phase: str, spec: Mapping, seed: int,
             errors: _Errors, capacity: int) -> Callable[[int], Any]:
    """Input pipeline ``i``'s batches of ``network.batch_size`` windows (one pipeline per
    worker; pipeline 0 draws what a single-device run draws)."""
    from niftykit.sampler.pipeline import window_dataset
    cfg = app.config

    def batches(pipeline: int) -> Any:
        own = pipeline_seed(seed, pipeline)
        return window_dataset(
            _window_source(app, subjects, phase, own, errors), spec,
            batch_size=cfg.network.batch_size, capacity=capacity,
            num_workers=min(cfg.system.num_threads, len(subjects)), seed=own)
    return batches


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


def _early_stopper(cfg: Any, validating: bool) -> Optional[EarlyStopper]:
    """The early stopper, if ``training.early_stopping`` is on and the run validates."""
    t = cfg.training
    if not t.early_stopping:
        return None
    if not validating:
        log.warning("training.early_stopping is on but the run does not validate "
                    "(training.validation_every_n and validation subjects); it is ignored")
        return None
    return EarlyStopper(t.early_stopping_mode, t.patience)


def _schedule(t: Any) -> Any:
    from niftykit.engine.schedule import LearningRate
    return LearningRate(t.lr, t.lr_schedule, max_iter=t.max_iter, decay_steps=t.lr_decay_steps,
                        decay_rate=t.lr_decay_rate, lr_min=t.lr_min, power=t.lr_power,
                        warmup_iters=t.lr_warmup_iters)


def _streams(t: Any, strategy: Any, training: Callable, checking: Optional[Callable],
             start: int) -> tuple:
    """Iterators over the (distributed) training and validation batches. With
    ``exact_resume`` a resumed run first replays (samples, without training) the batches the
    run had already used, so that it sees the windows an uninterrupted run would: the window
    stream is deterministic for a given ``system.seed`` (seeded workers, ordered interleave,
    seeded shuffle)."""
    skip = skip_checking = 0
    if t.exact_resume and start > 0:
        log.info("exact_resume: replaying the windows of iterations 1..%d (sampling only)", start)
        skip = start
        if t.validation_every_n > 0:
            skip_checking = (start // t.validation_every_n) * max(1, t.validation_max_iter)
    batches = iter(distributed_batches(strategy, training, skip))
    return batches, (iter(distributed_batches(strategy, checking, skip_checking))
                     if checking is not None else None)


def _write_config(cfg: Any) -> Path:
    """The resolved config as ``<model_dir>/config.yaml`` (atomic; replaced at each start)."""
    from niftykit.io import write_text
    return write_text(Path(cfg.system.model_dir) / "config.yaml", cfg.to_yaml(), overwrite=True)


def _build(app: Any, spec: Mapping, strategy: Any, tf: Any) -> tuple:
    """The model, its schedule and optimiser (built on the variables it updates), all
    created in the strategy's scope so that their variables are mirrored."""
    cfg = app.config
    t = cfg.training
    with strategy.scope():
        with precision_policy(cfg.network.precision):
            model = app.build_network()
            model({k: tf.zeros((1,) + tuple(s), dtype=d) for k, (s, d) in spec.items()}["image"])
        schedule = _schedule(t)
        optimiser = make_optimiser(t.optimiser, schedule, clip_norm=_keras_clip(t, strategy),
                                   weight_decay=t.weight_decay, precision=cfg.network.precision)
        updated, frozen = split_frozen(model, t.vars_to_freeze)
        if frozen:
            log.info("vars_to_freeze '%s': %d of %d trainable variables frozen (%d of %d "
                     "parameters)", t.vars_to_freeze, len(frozen), len(frozen) + len(updated),
                     count(frozen), count(frozen) + count(updated))
        optimiser.build(updated)  # so that a restored optimiser state is assigned at once
    return model, schedule, optimiser, updated


def _keras_clip(t: Any, strategy: Any) -> float:
    """``gradient_clip_norm`` for Keras' optimiser: on one replica only (with several,
    :func:`~niftykit.engine.distribute.replica_steps` clips the summed gradients)."""
    return t.gradient_clip_norm if strategy.num_replicas_in_sync == 1 else 0.0


def train(app: Any, *, overwrite: bool = False, debug: bool = False) -> Path:
    """Train ``app``'s network; returns the folder of the checkpoints.

    Raises:
        NiftykitError: bad data, existing checkpoints without ``overwrite``,
            a bad transfer-learning or early-stopping setting, or a loss that became NaN.
    """
    cfg = app.config
    with _located(cfg):
        return _train(app, overwrite, debug)


@contextlib.contextmanager
def _located(cfg: Any) -> Iterator[None]:
    """Prefix the config file to the engine's ``[section] key: ...`` errors."""
    try:
        yield
    except ConfigError as exc:
        if cfg.source and str(exc).startswith("["):
            raise ConfigError(f"{cfg.source}: {exc}") from None
        raise


def _train(app: Any, overwrite: bool, debug: bool) -> Path:
    cfg = app.config
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    strategy = make_strategy(cfg.system, tf)  # first: devices and collectives precede the runtime
    _schedule(cfg.training)  # checks the schedule's settings before any work
    source = initial_checkpoint(cfg.training)
    attach_stages(app, tf, train=True, overwrite=overwrite, debug=debug)  # e.g. a cascade's stage 1
    seed_everything(cfg.system.seed)  # after the stages, which seed themselves
    subjects, validation = _prepare(app)
    stopper = _early_stopper(cfg, bool(validation))
    _preflight(app, subjects, validation)
    spec = _spec(app, subjects[0])
    training, checking, errors = _inputs(app, subjects, validation, spec, local_replicas(strategy))
    model, schedule, optimiser, updated = _build(app, spec, strategy, tf)
    chief = is_chief(strategy)
    with contextlib.ExitStack() as stack:
        scratch = None if chief else scratch_folder(stack, keep=debug)
        ckpt, origin = checkpointers(cfg.system.model_dir, model, optimiser,
                                     cfg.training.max_checkpoints, scratch,
                                     afresh=cfg.training.starting_iter == 0 and overwrite)
        start = start_iteration(origin, model, optimiser, cfg.training, overwrite, source)
        streams = (*_streams(cfg.training, strategy, training, checking, start), errors)
        if debug:
            log.info("variables: %s", ", ".join(v.path for v in model.variables))
        if stopper is not None:
            stopper.history.extend(ckpt.state.history())
        saved = f"to {_write_config(cfg)}" if chief else "by the chief"
        log.info("network %s: %d parameters; iterations %d..%d; %s; config saved %s",
                 cfg.network.name, model.count_params(), start + 1, cfg.training.max_iter,
                 schedule.describe(), saved)
        logs = Path(scratch or cfg.system.model_dir) / "logs"
        run = _Run(app, (model, optimiser, updated, schedule), ckpt, stopper, strategy, logs, tf)
        outcome = run.loop(streams, start)
        if chief:
            _report(cfg, ckpt, outcome)
        else:
            log.info("worker finished at iteration %d; the chief saved the checkpoints",
                     outcome.last)
    return Path(cfg.system.model_dir) / "models"


def _inputs(app: Any, subjects: Sequence[Any], validation: Sequence[Any], spec: Mapping,
            replicas: int) -> tuple:
    """The training and validation pipeline builders (see :func:`_batches`; a pipeline
    feeds ``replicas``) and the error list they share."""
    from niftykit.sampler.pipeline import plan_queue
    cfg = app.config
    batch = cfg.network.batch_size * replicas
    queue = plan_queue(spec, queue_mb=cfg.system.queue_size_mb,
                       queue_length=cfg.network.queue_length,
                       samples_per_volume=cfg.training.sample_per_volume, batch_size=batch)
    log.info("training on %d subjects (%d for validation); windows %s; %s", len(subjects),
             len(validation), {k: list(s) for k, (s, _) in spec.items()}, queue.describe())
    errors = _Errors()
    training = _batches(app, subjects, "training", spec, cfg.system.seed, errors, queue.capacity)
    checking = (_batches(app, validation, "validation", spec, cfg.system.seed + 1, errors,
                         max(batch, cfg.network.queue_length))
                if validation else None)
    return training, checking, errors


@dataclass
class _Outcome:
    start: int
    last: int
    seconds: float
    stopped: Optional[str] = None


class _Run:
    """The iteration loop and what it reports; one per ``train`` call."""

    def __init__(self, app: Any, parts: tuple, ckpt: Checkpointer,
                 stopper: Optional[EarlyStopper], strategy: Any, logs: Path, tf: Any) -> None:
        from niftykit.engine.summaries import Summaries
        model, optimiser, updated, schedule = parts
        self.app, self.cfg, self.tf, self.strategy = app, app.config.training, tf, strategy
        self.optimiser, self.schedule, self.ckpt, self.stopper = optimiser, schedule, ckpt, stopper
        clip = self.cfg.gradient_clip_norm if strategy.num_replicas_in_sync > 1 else 0.0
        self.train_step, self.eval_step = replica_steps(app.loss, model, optimiser, updated,
                                                        strategy, clip, tf)
        self.summaries = Summaries(logs, tf)

    def first_replica(self, batch: Mapping[str, Any]) -> Dict[str, Any]:
        """This process's first replica's part of a (distributed) batch."""
        return {k: self.strategy.experimental_local_results(v)[0] for k, v in batch.items()}

    def learning_rate(self) -> float:
        """The rate of the update just applied."""
        return float(self.schedule(max(0, int(self.optimiser.iterations.numpy()) - 1)))

    def loop(self, streams: tuple, start: int) -> _Outcome:
        cfg = self.cfg
        batches, val_batches, errors = streams
        progress = TrainingProgress(start, cfg.max_iter, cfg.log_every_n)
        iteration, done, stopped = start, start, None
        try:
            for iteration in range(start + 1, cfg.max_iter + 1):
                batch = errors.next(batches, self.tf)
                loss, outputs = self.train_step(batch)
                done = iteration  # the weights now hold this iteration's update
                loss = float(loss)
                if not math.isfinite(loss):
                    raise NiftykitError(f"loss became {loss} at iteration {iteration}; lower "
                                        f"training.lr (now {cfg.lr}) or check the input intensities")
                lr = self.learning_rate()
                line = progress.step(iteration, loss, lr)
                if line:
                    log.info("%s", line)
                if cfg.tensorboard_every_n > 0 and iteration % cfg.tensorboard_every_n == 0:
                    self.summaries.scalars("training", iteration, {"loss": loss, "learning_rate": lr})
                    self.summaries.images(iteration, self.first_replica(batch), outputs)
                if val_batches is not None and iteration % cfg.validation_every_n == 0:
                    progress.clear()
                    stopped = self.validate(lambda: errors.next(val_batches, self.tf), iteration)
                if cfg.save_every_n > 0 and iteration % cfg.save_every_n == 0:
                    self.ckpt.save(iteration)
                if stopped:
                    log.info("early stopping at iteration %d: %s", iteration, stopped)
                    break
        except KeyboardInterrupt:
            progress.clear()
            if done > start:
                log.warning("interrupted; saved %s", self.ckpt.save(done))
            raise
        except self.tf.errors.UnavailableError as exc:
            progress.clear()
            raise self.lost(exc, done, start) from None
        finally:
            progress.clear()
            self.summaries.close()
        if iteration > start and iteration not in self.ckpt.iterations():
            self.ckpt.save(iteration)
        return _Outcome(start, iteration, progress.elapsed(), stopped)

    def lost(self, exc: Exception, done: int, start: int) -> Exception:
        """The error for a cluster that lost a worker (TensorFlow's health check aborted the
        collectives), after the chief saved the weights of the last complete iteration."""
        if getattr(self.strategy, "cluster_resolver", None) is None:
            return exc
        unhealthy = re.search(r"unhealthy[^:]*:(.*?)The tasks", str(exc), re.S)
        tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+",
                                      unhealthy.group(1) if unhealthy else ""))) or ["a worker"]
        saved = ""
        if done > start and is_chief(self.strategy):
            try:
                saved = f"; saved {self.ckpt.save(done)}"
            except Exception as failure:  # noqa: BLE001 - the error to report is the lost worker
                log.warning("could not save iteration %d: %s", done, failure)
        return NiftykitError(f"multi-worker training stopped at iteration {done + 1}: "
                             f"{', '.join(tasks)} stopped responding{saved}; restart every "
                             "worker with --starting_iter -1")

    def validate(self, next_batch: Callable, iteration: int) -> Optional[str]:
        """One validation round: log, TensorBoard, best checkpoint, early stopping.
        Returns why to stop early, or None."""
        tic = time.perf_counter()
        losses: List[float] = [float(self.eval_step(next_batch()))
                               for _ in range(max(1, self.cfg.validation_max_iter))]
        loss = float(np.mean(losses))
        best = self.ckpt.state.record(iteration, loss)
        if best:
            self.ckpt.save_best(iteration)
        log.info("    validation iter %d, loss=%.4f%s (%.3fs)", iteration, loss,
                 " (best so far)" if best else "", time.perf_counter() - tic)
        self.summaries.scalars("validation", iteration, {"loss": loss})
        return self.stopper.update(loss) if self.stopper is not None else None


def _report(cfg: Any, ckpt: Checkpointer, outcome: _Outcome) -> None:
    """The closing block: how the run ended, its best validation, where things are."""
    done = outcome.last - outcome.start
    rate = f", {done / outcome.seconds:.3g} it/s" if outcome.seconds > 0 and done else ""
    how = (f"stopped early at iteration {outcome.last} of {cfg.training.max_iter}"
           if outcome.stopped else f"finished at iteration {outcome.last}")
    log.info("training %s: %d iterations in %s%s", how, done, duration(outcome.seconds), rate)
    best = ckpt.state.best()
    if best is not None:
        log.info("  best validation loss %.4f at iteration %d: %s", best[1], best[0],
                 ckpt.best_prefix())
    kept = ", ".join(map(str, ckpt.iterations())) or "none"
    log.info("  checkpoints: %s (iterations %s)", ckpt.directory, kept)
    log.info("  TensorBoard: tensorboard --logdir %s", Path(cfg.system.model_dir) / "logs")
