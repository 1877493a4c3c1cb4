"""How a training run starts: afresh, from another model, or resumed.

==========================  ==================================================================
``starting_iter: 0``        new run; an existing checkpoint folder needs ``--overwrite``.
  + ``restore_from``        the weights (all, or those matching ``vars_to_restore``) come
                            from that checkpoint, the rest are initialised as usual; the
                            optimiser starts afresh at iteration 0 (fine-tuning).
``starting_iter: N`` / -1   resume the run in ``model_dir`` from iteration N (-1: the latest
                            readable checkpoint): weights, optimiser state (so the learning
                            rate schedule continues) and validation history.
  + ``vars_to_restore``     NiftyNet's partial restore: only the matching weights come from
                            the checkpoint of N; the others and the optimiser start afresh,
                            the iteration count continues from N.
  + ``restore_from``        ignored (with a note): it initialised the run when it began, and
                            a resumed run continues from its own checkpoints.
==========================  ==================================================================
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Tuple

from niftykit.engine.checkpoint import (Checkpointer, check_checkpoint, find_checkpoint,
                                        restore_weights, weights_by_path)
from niftykit.engine.transfer import count, match_variables
from niftykit.errors import ConfigError, NiftykitError

__all__ = ["initial_checkpoint", "start_iteration"]

log = logging.getLogger("niftykit")


def initial_checkpoint(t: Any) -> Optional[Tuple[str, int]]:
    """The checkpoint a new run starts from (``training.restore_from``), found and read
    before any data work; None when there is none or the run resumes.

    Raises:
        ConfigError: ``vars_to_restore`` with nothing to restore from.
        NiftykitError: ``restore_from`` holds no readable checkpoint.
    """
    if t.starting_iter != 0:
        return None
    if t.restore_from is None:
        if t.vars_to_restore:
            raise ConfigError("[training] vars_to_restore: needs a checkpoint to restore from: "
                              "set training.restore_from (a new run) or training.starting_iter "
                              "(a resumed run)")
        return None
    try:
        return find_checkpoint(t.restore_from)
    except NiftykitError as exc:
        raise ConfigError(f"[training] restore_from: {exc}") from None


def _chosen_weights(model: Any, pattern: str) -> dict:
    weights = weights_by_path(model)
    if not pattern:
        return weights
    chosen = {id(v) for v in match_variables(model.variables, pattern, "vars_to_restore")}
    return {k: v for k, v in weights.items() if id(v) in chosen}


def _initialise(model: Any, prefix: str, pattern: str) -> None:
    weights = _chosen_weights(model, pattern)
    restore_weights(prefix, weights, "vars_to_restore" if pattern else "restore_from")
    log.info("initialised %d of %d variables (%d of %d parameters) from %s%s", len(weights),
             len(model.variables), count(weights.values()), count(model.variables), prefix,
             f" (vars_to_restore '{pattern}')" if pattern else "")


def _resume_partially(model: Any, optimiser: Any, ckpt: Checkpointer, t: Any) -> int:
    chosen = check_checkpoint(ckpt.directory.parent, t.starting_iter)
    prefix, iteration = find_checkpoint(ckpt.directory if t.starting_iter < 0
                                        else ckpt.directory / f"model.ckpt-{chosen}")
    weights = _chosen_weights(model, t.vars_to_restore)
    restore_weights(prefix, weights, "vars_to_restore")
    optimiser.iterations.assign(iteration)
    log.info("restored %d of %d variables (%d of %d parameters) from %s (vars_to_restore '%s'); "
             "the others and the optimiser start afresh", len(weights), len(model.variables),
             count(weights.values()), count(model.variables), prefix, t.vars_to_restore)
    return iteration


def start_iteration(ckpt: Checkpointer, model: Any, optimiser: Any, t: Any, overwrite: bool,
                    source: Optional[Tuple[str, int]]) -> int:
    """Initialise or restore the model, optimiser and loop state (see the module docstring).

    Args:
        ckpt: the run's checkpointer.
        model: the built network.
        optimiser: the built optimiser.
        t: the training section.
        overwrite: ``--overwrite``: a new run may delete the folder's checkpoints.
        source: :func:`initial_checkpoint`'s result.

    Returns:
        The iteration the run continues from (0 for a new run).

    Raises:
        NiftykitError: existing checkpoints without ``overwrite``, a missing or unreadable
            checkpoint, or one that does not fit the network.
    """
    if t.starting_iter == 0:
        latest = ckpt.latest()
        if latest is not None and not overwrite:
            raise NiftykitError(
                f"{ckpt.directory} already has checkpoints (latest: iter {latest}); resume with "
                f"--starting_iter {latest}, or pass --overwrite to train afresh")
        if source is not None:
            _initialise(model, source[0], t.vars_to_restore)  # before clearing: it may lie here
        if latest is not None or ckpt.best_prefix():
            ckpt.clear()
        return 0
    if t.restore_from is not None:
        log.info("resuming %s: training.restore_from and vars_to_restore only initialise new "
                 "runs; everything comes from the run's own checkpoint", ckpt.directory)
    elif t.vars_to_restore:
        return _resume_partially(model, optimiser, ckpt, t)
    iteration = ckpt.restore(t.starting_iter)
    log.info("resumed from the checkpoint of iteration %d", iteration)
    return iteration
