"""Early stopping on the validation loss, with NiftyNet's rules (``training.early_stopping``).

NiftyNet (0.6, ``niftynet/engine/handler_early_stopping.py`` and
``handler_performance.py``) kept the last ``patience`` validation losses and,
once it had ``patience`` of them, stopped when the criterion of
``early_stopping_mode`` held. With ``h`` that history and ``last = h[-1]``:

=====================  ==========================================================
``mean``               ``last > mean(h[:-1])``
``robust_mean``        ``last > mean`` of the values of ``h[:-1]`` strictly between
                       their 5th and 95th percentiles
``median``             ``last > median(h[:-1])``
``generalisation_loss``  ``(last - min(h)) / (max(h) - min(h)) > 0.2`` (if
                       ``min(h) == 0`` the value is ``last``)
``median_smoothing``   ``h[:-1]`` median-filtered (size 5), differentiated
                       (``numpy.gradient``); stop when fewer than half of the
                       slopes are below 0.03, i.e. the loss mostly rises
``validation_up``      the last ``patience - patience % 5`` values in 5 equal strips;
                       stop when every strip's generalisation loss (as above, on
                       the strip) is at least 0.03, i.e. the loss rose in each
=====================  ==========================================================

Differences from NiftyNet, both deliberate: one history entry per validation
round (the mean over ``validation_max_iter`` batches; NiftyNet appended every
validation batch, so with ``validation_max_iter: 1`` the two agree), and
a flat history (``max(h) == min(h)``) has generalisation loss 0 where NiftyNet
divided by zero.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Iterable, Optional, Sequence

import numpy as np
from scipy.ndimage import median_filter

from niftykit.errors import ConfigError

__all__ = ["EarlyStopper", "should_stop", "generalisation_loss", "MODES"]

MODES = ("mean", "robust_mean", "median", "generalisation_loss", "median_smoothing",
         "validation_up")
_MIN_PATIENCE = {"median_smoothing": 3, "validation_up": 5}
_SMOOTHING_SIZE, _MIN_DELTA, _STRIPS, _GL_THRESHOLD = 5, 0.03, 5, 0.2


def generalisation_loss(history: Sequence[float]) -> float:
    """``(last - min) / (max - min)`` of ``history`` (NiftyNet's definition); 0 if flat."""
    values = np.asarray(history, dtype=np.float64)
    low, high, last = values.min(), values.max(), values[-1]
    if low == 0:
        return float(last)
    if high == low:
        return 0.0
    return float((last - low) / (high - low))


def should_stop(history: Sequence[float], mode: str) -> Optional[str]:
    """Why to stop after ``history`` (oldest first, ``patience`` values), or None.

    Raises:
        ConfigError: an unknown mode.
    """
    h = np.asarray(history, dtype=np.float64)
    last, previous = h[-1], h[:-1]
    if mode in ("mean", "median", "robust_mean"):
        if mode == "robust_mean":
            low, high = np.percentile(previous, [5, 95])
            previous = previous[(previous > low) & (previous < high)]
        if previous.size == 0:
            return None
        centre = float(np.mean(previous) if mode != "median" else np.median(previous))
        if last > centre:
            return (f"validation loss {last:.4f} is above the {mode.replace('_', ' ')} "
                    f"{centre:.4f} of the previous {len(h) - 1} validations")
        return None
    if mode == "generalisation_loss":
        value = generalisation_loss(h)
        if value > _GL_THRESHOLD:
            return (f"generalisation loss {value:.3f} > {_GL_THRESHOLD} over the last "
                    f"{len(h)} validations")
        return None
    if mode == "median_smoothing":
        slopes = np.gradient(median_filter(previous, size=_SMOOTHING_SIZE))
        flat = float(np.mean(slopes < _MIN_DELTA))
        if flat < 0.5:
            return (f"the median-smoothed validation loss rose in {1 - flat:.0%} of the last "
                    f"{len(previous)} validations")
        return None
    if mode == "validation_up":
        strips = np.split(h[len(h) % _STRIPS:], _STRIPS)
        if all(generalisation_loss(strip) >= _MIN_DELTA for strip in strips):
            return (f"the validation loss rose in each of {_STRIPS} successive strips of "
                    f"{len(strips[0])} validations")
        return None
    raise ConfigError(f"[training] early_stopping_mode: unknown mode '{mode}' "
                      f"(available: {', '.join(MODES)})")


class EarlyStopper:
    """Keeps the last ``patience`` validation losses and applies :func:`should_stop`.

    Args:
        mode: ``training.early_stopping_mode``.
        patience: ``training.patience``, in validation rounds.
        history: losses from before a resume, oldest first.

    Raises:
        ConfigError: a patience too short for the mode (``median_smoothing`` needs 3,
            ``validation_up`` 5), or an unknown mode.
    """

    def __init__(self, mode: str, patience: int, history: Iterable[float] = ()) -> None:
        if mode not in MODES:
            raise ConfigError(f"[training] early_stopping_mode: unknown mode '{mode}' "
                              f"(available: {', '.join(MODES)})")
        needed = _MIN_PATIENCE.get(mode, 2)
        if patience < needed:
            raise ConfigError(f"[training] patience: early_stopping_mode {mode} needs a "
                              f"patience of at least {needed} validations, got {patience}")
        self.mode, self.patience = mode, int(patience)
        self.history: Deque[float] = deque(history, maxlen=self.patience)

    def update(self, loss: float) -> Optional[str]:
        """Record one validation loss; returns why to stop, or None."""
        self.history.append(float(loss))
        if len(self.history) < self.patience:
            return None
        reason = should_stop(list(self.history), self.mode)
        if reason is None:
            return None
        return f"{reason} (early_stopping_mode {self.mode}, patience {self.patience})"
