"""Checkpoints in ``<model_dir>/models/model.ckpt-<iter>`` (weights, optimiser state, iteration).

Written through ``tf.train.CheckpointManager``, which writes to temporary
names and renames, keeping the newest ``max_checkpoints``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from niftykit.errors import NiftykitError

__all__ = ["Checkpointer", "check_checkpoint"]


def check_checkpoint(model_dir: Path, iteration: int = -1) -> int:
    """The iteration whose checkpoint exists in ``<model_dir>/models`` (-1: the latest),
    found from the files alone, before anything is built.

    Raises:
        NiftykitError: there is no checkpoint, or none for ``iteration``.
    """
    directory = Path(model_dir) / "models"
    found = sorted(int(m.group(1)) for m in (re.search(r"model\.ckpt-(\d+)\.index$", p.name)
                                              for p in directory.glob("model.ckpt-*.index")) if m)
    if not found:
        raise NiftykitError(f"no checkpoint in {directory}; run `niftykit train` first")
    chosen = found[-1] if iteration < 0 else iteration
    if chosen not in found:
        raise NiftykitError(f"no checkpoint for iteration {chosen} in {directory} "
                            f"(available: {', '.join(map(str, found))})")
    return chosen


def _weights_by_path(model: Any) -> Dict[str, Any]:
    """The model's variables keyed by their layer path (``network/down0_conv0/kernel``).

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


class Checkpointer:
    """Save and restore a model (and optionally its optimiser) by iteration.

    Args:
        model_dir: ``system.model_dir``; checkpoints go to its ``models/`` folder.
        model: the Keras model (built).
        optimizer: the optimiser, or None at inference.
        max_to_keep: ``training.max_checkpoints``.
    """

    def __init__(self, model_dir: Path, model: Any, optimizer: Any = None, max_to_keep: int = 100) -> None:
        import tensorflow as tf
        self.directory = Path(model_dir) / "models"
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        parts = {"weights": _weights_by_path(model), "iteration": self.iteration}
        if optimizer is not None:
            parts["optimizer"] = optimizer
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=max_to_keep, checkpoint_name="model.ckpt")

    def iterations(self) -> List[int]:
        """Iterations that have a checkpoint, oldest first."""
        found = [re.search(r"-(\d+)$", p) for p in self.manager.checkpoints]
        return [int(m.group(1)) for m in found if m]

    def save(self, iteration: int) -> str:
        """Write the checkpoint of ``iteration``; returns its prefix."""
        self.iteration.assign(iteration)
        return self.manager.save(checkpoint_number=iteration)

    def restore(self, iteration: int = -1, *, weights_only: bool = False) -> int:
        """Restore ``iteration`` (-1: the latest); returns the iteration restored.

        Raises:
            NiftykitError: no such checkpoint (names the folder and what exists).
        """
        chosen = check_checkpoint(self.directory.parent, iteration)
        status = self.checkpoint.restore(str(self.directory / f"model.ckpt-{chosen}"))
        if weights_only:
            status.expect_partial()
        try:
            status.assert_existing_objects_matched()
        except AssertionError as exc:
            raise NiftykitError(
                f"the checkpoint of iteration {chosen} in {self.directory} does not fit this network "
                f"(was it trained with other network settings?): {str(exc).splitlines()[0]}") from None
        return chosen

    def clear(self) -> None:
        """Delete every checkpoint (``--overwrite`` when starting afresh)."""
        if self.directory.exists():
            shutil.rmtree(self.directory)
        import tensorflow as tf
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=self.manager._max_to_keep,
            checkpoint_name="model.ckpt")

    def latest(self) -> Optional[int]:
        """The newest checkpointed iteration, or None."""
        found = self.iterations()
        return found[-1] if found else None
