"""Learning-rate schedules (``training.lr_schedule``) as a Keras ``LearningRateSchedule``.

The schedule is a function of the optimiser's update counter, so it is part of
the optimiser state: a resumed run continues the schedule where it stopped,
and a changed ``training.lr`` takes effect on resume (the rate itself is never
stored in the checkpoint).

With ``s`` the number of updates already applied (0 at iteration 1), ``W`` =
``lr_warmup_iters`` and ``T = max(1, max_iter - W)``:

* warm-up (any schedule): ``lr * (s + 1) / W`` while ``s < W``, then the
  schedule below runs on ``t = s - W`` (the decay starts after the warm-up;
  Goyal et al., "Accurate, large minibatch SGD", arXiv:1706.02677, 2017);
* ``constant``: ``lr``;
* ``step``: ``lr * lr_decay_rate ** floor(t / lr_decay_steps)``;
* ``cosine``: ``lr_min + (lr - lr_min) * (1 + cos(pi * t / T)) / 2``
  (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts);
* ``polynomial``: ``lr_min + (lr - lr_min) * (1 - t / T) ** lr_power``
  (the "poly" rule of nnU-Net, Isensee et al., Nature Methods 2021, with power 0.9).

This module imports Keras; the engine imports it inside the functions that train.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import keras
from keras import ops

from niftykit.errors import ConfigError

__all__ = ["LearningRate", "SCHEDULES"]

SCHEDULES = ("constant", "step", "cosine", "polynomial")


@keras.saving.register_keras_serializable(package="niftykit")
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at update ``step`` (see the module docstring for the formulas).

    Args:
        lr: the peak rate (``training.lr``).
        schedule: one of :data:`SCHEDULES`.
        max_iter: the run's last iteration; cosine and polynomial reach ``lr_min`` there.
        decay_steps: updates between two decays of the ``step`` schedule.
        decay_rate: factor applied at each ``step`` decay.
        lr_min: the final rate of ``cosine`` and ``polynomial``.
        power: the exponent of ``polynomial``.
        warmup_iters: updates of linear warm-up before the schedule (0 = none).

    Raises:
        ConfigError: an unknown schedule, or ``lr_min`` above ``lr``.
    """

    def __init__(self, lr: float, schedule: str = "constant", max_iter: int = 1,
                 decay_steps: int = 1000, decay_rate: float = 0.1, lr_min: float = 0.0,
                 power: float = 0.9, warmup_iters: int = 0) -> None:
        if schedule not in SCHEDULES:
            raise ConfigError(f"[training] lr_schedule: unknown schedule '{schedule}' "
                              f"(available: {', '.join(SCHEDULES)})")
        if schedule in ("cosine", "polynomial") and lr_min > lr:
            raise ConfigError(f"[training] lr_min: {lr_min} is above training.lr ({lr}); "
                              "the schedule decays from lr to lr_min")
        self.lr, self.schedule, self.max_iter = float(lr), schedule, int(max_iter)
        self.decay_steps, self.decay_rate = max(1, int(decay_steps)), float(decay_rate)
        self.lr_min, self.power, self.warmup_iters = float(lr_min), float(power), int(warmup_iters)

    def _decayed(self, t: Any) -> Any:
        """The schedule without warm-up, at ``t`` updates after the warm-up (float tensor)."""
        if self.schedule == "constant":
            return ops.convert_to_tensor(self.lr, "float32") + 0.0 * t
        if self.schedule == "step":
            return self.lr * ops.power(self.decay_rate, ops.floor(t / self.decay_steps))
        horizon = float(max(1, self.max_iter - self.warmup_iters))
        fraction = ops.minimum(t, horizon) / horizon
        if self.schedule == "cosine":
            factor = 0.5 * (1.0 + ops.cos(math.pi * fraction))
        else:
            factor = ops.power(1.0 - fraction, self.power)
        return self.lr_min + (self.lr - self.lr_min) * factor

    def __call__(self, step: Any) -> Any:
        s = ops.cast(step, "float32")
        if self.warmup_iters <= 0:
            return self._decayed(s)
        warm = self.lr * (s + 1.0) / float(self.warmup_iters)
        after = self._decayed(ops.maximum(s - float(self.warmup_iters), 0.0))
        return ops.where(s < float(self.warmup_iters), warm, after)

    def describe(self) -> str:
        """One line for the log, e.g. ``cosine 0.001 -> 0 over 3000 iterations, 100 warm-up``."""
        text = {"constant": f"constant {self.lr:g}",
                "step": f"step {self.lr:g} x{self.decay_rate:g} every {self.decay_steps}",
                "cosine": f"cosine {self.lr:g} -> {self.lr_min:g} by iteration {self.max_iter}",
                "polynomial": f"polynomial (power {self.power:g}) {self.lr:g} -> "
                              f"{self.lr_min:g} by iteration {self.max_iter}"}[self.schedule]
        return text + (f", {self.warmup_iters} warm-up iterations" if self.warmup_iters else "")

    def get_config(self) -> Dict[str, Any]:
        return dict(lr=self.lr, schedule=self.schedule, max_iter=self.max_iter,
                    decay_steps=self.decay_steps, decay_rate=self.decay_rate,
                    lr_min=self.lr_min, power=self.power, warmup_iters=self.warmup_iters)
