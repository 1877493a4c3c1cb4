"""Transfer learning: which variables to restore (``training.vars_to_restore``) and which
to keep fixed (``training.vars_to_freeze``), both chosen by a regular expression.

The expression is searched (``re.search``, as NiftyNet did) in each variable's
path: the network's name, the layer names and the weight name joined by ``/``,
e.g. ``network/down0_conv0/kernel`` — so ``^network/down`` picks every weight of
the layers whose names start with ``down``, and ``kernel$`` every kernel.
``niftykit train --debug`` prints the paths.
"""

from __future__ import annotations

import logging
import re
from typing import Any, List, Sequence, Tuple

from niftykit.errors import ConfigError

__all__ = ["match_variables", "split_frozen", "count"]

log = logging.getLogger("niftykit")


def match_variables(variables: Sequence[Any], pattern: str, key: str) -> List[Any]:
    """The variables whose ``path`` contains a match of ``pattern``.

    Args:
        variables: Keras variables.
        pattern: the regular expression.
        key: the config key that holds it, for messages (``vars_to_restore``).

    Raises:
        ConfigError: ``pattern`` is not a regular expression, or matches nothing
            (the message lists a few of the paths there are).
    """
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"[training] {key}: '{pattern}' is not a regular expression "
                          f"({exc})") from None
    chosen = [v for v in variables if regex.search(v.path)]
    if not chosen:
        paths = [v.path for v in variables]
        more = f", ... ({len(paths)} in all)" if len(paths) > 4 else ""
        raise ConfigError(f"[training] {key}: '{pattern}' matches none of the network's "
                          f"variables ({', '.join(paths[:4])}{more})")
    return chosen


def split_frozen(model: Any, pattern: str) -> Tuple[List[Any], List[Any]]:
    """The trainable variables to update and those frozen by ``pattern`` ('' freezes none).

    Frozen variables get no gradient updates (and no weight decay); layers still
    run in training mode (batch statistics are still updated), as in NiftyNet.

    Raises:
        ConfigError: a bad pattern, one that matches no trainable variable, or one
            that freezes them all.
    """
    trainable = list(model.trainable_variables)
    if not pattern:
        return trainable, []
    frozen = match_variables(trainable, pattern, "vars_to_freeze")
    ids = {id(v) for v in frozen}
    updated = [v for v in trainable if id(v) not in ids]
    if not updated:
        raise ConfigError(f"[training] vars_to_freeze: '{pattern}' freezes every trainable "
                          "variable; nothing would be trained")
    return updated, frozen


def count(variables: Sequence[Any]) -> int:
    """Scalars in ``variables``."""
    total = 0
    for variable in variables:
        size = 1
        for dim in variable.shape:
            size *= int(dim)
        total += size
    return total
