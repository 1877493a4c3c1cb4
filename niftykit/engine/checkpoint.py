"""Checkpoints in ``<model_dir>/models/model.ckpt-<iter>`` (weights, optimiser state, iteration,
validation history), plus the best one in ``<model_dir>/models/best/``.

Written through ``tf.train.CheckpointManager``: TensorFlow writes each file under
a temporary name and renames it (the ``.index`` last, so a checkpoint is listed
only once complete), and the ``checkpoint`` list file atomically. The newest
``training.max_checkpoints`` are kept, oldest deleted; the best checkpoint
(lowest validation loss) is kept apart, one at a time, and never rotated out.

Every tensor of a checkpoint is read (and checksummed by TensorFlow) before it
is restored: when the latest checkpoint is unreadable (a truncated file after a
crash or a full disk) the previous one is used, with a warning.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from niftykit.errors import ConfigError, NiftykitError

__all__ = ["Checkpointer", "TrainingState", "check_checkpoint", "find_checkpoint",
           "restore_weights", "weights_by_path", "BEST"]

log = logging.getLogger("niftykit")
BEST = "best"
_NAME = "model.ckpt"
Iteration = Union[int, str]


def _found(directory: Path) -> List[int]:
    """Iterations with a complete checkpoint (an ``.index`` file) in ``directory``, oldest first."""
    matches = (re.search(r"model\.ckpt-(\d+)\.index$", p.name)
               for p in Path(directory).glob(f"{_NAME}-*.index"))
    return sorted(int(m.group(1)) for m in matches if m)


def check_checkpoint(model_dir: Path, iteration: Iteration = -1) -> int:
    """The iteration whose checkpoint exists in ``<model_dir>/models`` (-1: the latest;
    ``"best"``: the one of the lowest validation loss), found from the files alone,
    before anything is built.

    Raises:
        NiftykitError: there is no checkpoint, or none for ``iteration``.
    """
    directory = Path(model_dir) / "models"
    if iteration == BEST:
        best = _found(directory / BEST)
        if not best:
            raise NiftykitError(f"no best checkpoint in {directory / BEST} (it is written when "
                                "training validates: set training.validation_every_n)")
        return best[-1]
    found = _found(directory)
    if not found:
        raise NiftykitError(f"no checkpoint in {directory}; run `niftykit train` first")
    chosen = found[-1] if int(iteration) < 0 else int(iteration)
    if chosen not in found:
        raise NiftykitError(f"no checkpoint for iteration {chosen} in {directory} "
                            f"(available: {', '.join(map(str, found))})")
    return chosen


def _unreadable(prefix: str) -> Optional[str]:
    """Why the checkpoint ``prefix`` cannot be read (every tensor is read), or None."""
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # noqa: BLE001 - TF raises OpError, IndexError, ... on bad files
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return None


def find_checkpoint(path: Path) -> Tuple[str, int]:
    """The checkpoint named by ``path``: a prefix (``.../model.ckpt-300``), a folder of
    checkpoints (its latest readable one) or a ``model_dir`` (its ``models/`` folder).

    Returns:
        The prefix and its iteration.

    Raises:
        NiftykitError: nothing readable there.
    """
    path = Path(path)
    match = re.search(r"model\.ckpt-(\d+)$", path.name)
    if match and path.with_name(path.name + ".index").exists():
        problem = _unreadable(str(path))
        if problem:
            raise NiftykitError(f"checkpoint {path} is unreadable: {problem}")
        return str(path), int(match.group(1))
    directory = path / "models" if not _found(path) and (path / "models").is_dir() else path
    for iteration in reversed(_found(directory)):
        prefix = str(directory / f"{_NAME}-{iteration}")
        problem = _unreadable(prefix)
        if problem is None:
            return prefix, iteration
        log.warning("checkpoint %s is unreadable (%s); trying the previous one", prefix, problem)
    raise NiftykitError(f"no readable checkpoint at {path} (give a checkpoint prefix such as "
                        f"<model_dir>/models/{_NAME}-300, a folder of checkpoints or a model_dir)")


def weights_by_path(model: Any) -> Dict[str, Any]:
    """The model's variables keyed by their layer path (``network.down0_conv0.kernel``).

    Keras 3 layers kept in Python lists are invisible to ``tf.train.Checkpoint``'s
    object graph, so the variables are listed explicitly, by name: checkpoints do not
    depend on how a network stores its layers, only on the layer names.
    """
    weights: Dict[str, Any] = {}
    for variable in model.variables:
        key = variable.path.replace("/", ".")
        if key in weights:
            raise NiftykitError(f"two weights of the network are both named '{variable.path}'; "
                                "give every layer its own name")
        weights[key] = variable
    return weights


def restore_weights(prefix: str, weights: Mapping[str, Any], key: str) -> None:
    """Restore only ``weights`` (a subset of :func:`weights_by_path`) from ``prefix``.

    Raises:
        ConfigError: a chosen weight is missing from the checkpoint or has another
            shape there (names ``key``, the setting that chose them).
    """
    import tensorflow as tf
    stored = dict(tf.train.list_variables(prefix))
    problems = []
    for name, variable in weights.items():
        shape = stored.get(f"weights/{name.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE")
        if shape is None:
            problems.append(f"{variable.path} is not in it")
        elif list(shape) != list(variable.shape):
            problems.append(f"{variable.path} is {tuple(shape)} there, {tuple(variable.shape)} here")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(f"[training] {key}: checkpoint {prefix} does not fit: "
                          f"{'; '.join(problems[:3])}{more}")
    tf.train.Checkpoint(weights=dict(weights)).read(prefix).expect_partial()


class TrainingState:
    """What the loop needs besides weights: the validation losses so far (for early
    stopping and the best checkpoint), stored in the checkpoint."""

    def __init__(self) -> None:
        import tensorflow as tf
        self.iterations = tf.Variable(tf.zeros([0], tf.int64), shape=tf.TensorShape([None]),
                                      trainable=False, name="validation_iterations")
        self.losses = tf.Variable(tf.zeros([0], tf.float64), shape=tf.TensorShape([None]),
                                  trainable=False, name="validation_losses")
        self.trackable = tf.train.Checkpoint(validation_iterations=self.iterations,
                                             validation_losses=self.losses)

    def record(self, iteration: int, loss: float) -> bool:
        """Add one validation loss; True if it is the lowest so far."""
        import tensorflow as tf
        best = self.best()
        self.iterations.assign(tf.concat([self.iterations, [int(iteration)]], 0))
        self.losses.assign(tf.concat([self.losses, [float(loss)]], 0))
        return best is None or loss < best[1]

    def history(self) -> List[float]:
        """Validation losses, oldest first."""
        return [float(v) for v in self.losses.numpy()]

    def best(self) -> Optional[Tuple[int, float]]:
        """(iteration, loss) of the lowest validation loss, or None."""
        losses = self.losses.numpy()
        if losses.size == 0:
            return None
        index = int(losses.argmin())
        return int(self.iterations.numpy()[index]), float(losses[index])


class Checkpointer:
    """Save and restore a model (and optionally its optimiser and loop state) by iteration.

    Args:
        model_dir: ``system.model_dir``; checkpoints go to its ``models/`` folder.
        model: the Keras model (built).
        optimizer: the optimiser (built, so that its state restores at once), or None at inference.
        max_to_keep: ``training.max_checkpoints``.
        state: the loop's :class:`TrainingState`, saved with each checkpoint.
    """

    def __init__(self, model_dir: Path, model: Any, optimizer: Any = None, max_to_keep: int = 100,
                 state: Optional[TrainingState] = None) -> None:
        import tensorflow as tf
        self.directory = Path(model_dir) / "models"
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.parts: Dict[str, Any] = {"weights": weights_by_path(model), "iteration": self.iteration}
        if optimizer is not None:
            self.parts["optimizer"] = optimizer
        self.state = state
        extra = {"state": state.trackable} if state is not None else {}
        self.checkpoint = tf.train.Checkpoint(**self.parts, **extra)
        self.max_to_keep = max_to_keep
        self._managers()

    def _managers(self) -> None:
        import tensorflow as tf
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=self.max_to_keep, checkpoint_name=_NAME)
        self.best_manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory / BEST), max_to_keep=1, checkpoint_name=_NAME)

    def iterations(self) -> List[int]:
        """Iterations that have a checkpoint, oldest first."""
        found = [re.search(r"-(\d+)$", p) for p in self.manager.checkpoints
                 if Path(p + ".index").exists()]
        return [int(m.group(1)) for m in found if m]

    def save(self, iteration: int) -> str:
        """Write the checkpoint of ``iteration`` (deleting the oldest beyond
        ``max_to_keep``); returns its prefix."""
        self.iteration.assign(iteration)
        return self.manager.save(checkpoint_number=iteration)

    def save_best(self, iteration: int) -> str:
        """Write ``iteration`` as the best checkpoint, replacing the previous best."""
        self.iteration.assign(iteration)
        return self.best_manager.save(checkpoint_number=iteration)

    def restore(self, iteration: Iteration = -1, *, weights_only: bool = False) -> int:
        """Restore ``iteration`` (-1: the latest readable one; ``"best"``); returns the
        iteration restored.

        Raises:
            NiftykitError: no such checkpoint, an unreadable one (for -1: none readable),
                or one that does not fit this network.
        """
        chosen = check_checkpoint(self.directory.parent, iteration)
        folder = self.directory / BEST if iteration == BEST else self.directory
        candidates = ([i for i in reversed(_found(folder)) if i <= chosen]
                      if iteration == -1 else [chosen])
        skipped: List[str] = []
        for number in candidates:
            prefix = str(folder / f"{_NAME}-{number}")
            problem = _unreadable(prefix)
            if problem is None:
                self._restore(prefix, number, weights_only)
                if skipped and not weights_only:
                    self._set_aside(skipped)
                return number
            if iteration != -1:
                raise NiftykitError(f"checkpoint {prefix} is unreadable: {problem}")
            log.warning("checkpoint %s is unreadable (%s); using the previous one", prefix, problem)
            skipped.append(prefix)
        raise NiftykitError(f"no readable checkpoint in {self.directory}")

    def _set_aside(self, prefixes: Sequence[str]) -> None:
        """Move unreadable checkpoints to ``models/unreadable/`` (kept for inspection) and
        drop them from the list, so that they neither take rotation slots nor come back."""
        import time

        import tensorflow as tf
        aside = self.directory / "unreadable"
        aside.mkdir(parents=True, exist_ok=True)
        for prefix in prefixes:
            for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
                path.replace(aside / path.name)
        kept = [str(self.directory / f"{_NAME}-{i}") for i in _found(self.directory)]
        if kept:
            now = time.time()
            tf.compat.v1.train.update_checkpoint_state(
                str(self.directory), kept[-1], all_model_checkpoint_paths=kept,
                all_model_checkpoint_timestamps=[now] * len(kept),
                last_preserved_timestamp=now - 1)
        self._managers()
        log.warning("moved %d unreadable checkpoint(s) to %s", len(prefixes), aside)

    def _restore(self, prefix: str, number: int, weights_only: bool) -> None:
        import tensorflow as tf
        status = tf.train.Checkpoint(**self.parts).read(prefix)
        if weights_only:
            status.expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as exc:
            raise NiftykitError(
                f"the checkpoint of iteration {number} in {self.directory} does not fit this network "
                f"(was it trained with other network settings?): {str(exc).splitlines()[0]}") from None
        if self.state is not None:
            # absent from checkpoints written before niftykit kept the validation history
            tf.train.Checkpoint(state=self.state.trackable).read(prefix).expect_partial()

    def clear(self) -> None:
        """Delete every checkpoint, the best one too (``--overwrite`` when starting afresh)."""
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self._managers()

    def latest(self) -> Optional[int]:
        """The newest checkpointed iteration, or None."""
        found = self.iterations()
        return found[-1] if found else None

    def best_prefix(self) -> Optional[str]:
        """The prefix of the best checkpoint, or None."""
        return self.best_manager.latest_checkpoint

