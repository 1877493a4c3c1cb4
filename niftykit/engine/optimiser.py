"""Optimisers by NiftyNet's names (``training.optimiser``), with niftykit's extras.

* ``training.gradient_clip_norm``: the gradients of all updated variables are
  rescaled together when their global L2 norm exceeds it (Keras' ``global_clipnorm``;
  Pascanu et al., ICML 2013). Under ``mixed_float16`` the clipping sees the
  unscaled gradients. 0 switches it off.
* ``training.weight_decay``: decoupled weight decay (Loshchilov & Hutter,
  "Decoupled weight decay regularization", ICLR 2019) for every optimiser:
  each update also does ``w -= lr * weight_decay * w`` on every updated
  variable, outside the gradient (so Adam's moments never see it), as PyTorch's
  ``AdamW`` does. ``adamw`` is ``adam`` with this decay; with 0 they are equal.
  NiftyNet's ``network.decay`` (an L1/L2 penalty added to the loss) is separate.
* ``network.precision: mixed_float16`` wraps the optimiser in Keras'
  ``LossScaleOptimizer`` (dynamic loss scaling: steps with non-finite gradients
  are skipped and the scale halved). ``mixed_bfloat16`` has float32's range
  and needs no scaling.
"""

from __future__ import annotations

import logging
from typing import Any

from niftykit.errors import ConfigError

__all__ = ["make_optimiser", "OPTIMISERS"]

log = logging.getLogger("niftykit")

OPTIMISERS = ("adam", "adamw", "gradientdescent", "sgd", "momentum", "nesterov", "adagrad", "rmsprop")


def make_optimiser(name: str, learning_rate: Any, *, clip_norm: float = 0.0,
                   weight_decay: float = 0.0, precision: str = "float32") -> Any:
    """A Keras optimiser. ``momentum`` and ``nesterov`` use momentum 0.9 as NiftyNet did.

    Args:
        name: ``training.optimiser``.
        learning_rate: a float or a ``LearningRateSchedule`` (see :mod:`niftykit.engine.schedule`).
        clip_norm: ``training.gradient_clip_norm`` (0 = off).
        weight_decay: ``training.weight_decay``, decoupled (0 = off).
        precision: ``network.precision``; ``mixed_float16`` adds loss scaling.

    Raises:
        ConfigError: an unknown optimiser name.
    """
    import keras
    key = name.lower()
    extras = {"global_clipnorm": float(clip_norm) if clip_norm > 0 else None,
              "weight_decay": float(weight_decay) if weight_decay > 0 else None}
    if key in ("adam", "adamw"):
        if key == "adamw" and not weight_decay:
            log.info("training.optimiser adamw with training.weight_decay 0 is plain Adam")
        optimiser = keras.optimizers.Adam(learning_rate, **extras)
    elif key in ("gradientdescent", "sgd"):
        optimiser = keras.optimizers.SGD(learning_rate, **extras)
    elif key == "momentum":
        optimiser = keras.optimizers.SGD(learning_rate, momentum=0.9, **extras)
    elif key == "nesterov":
        optimiser = keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, **extras)
    elif key == "adagrad":
        optimiser = keras.optimizers.Adagrad(learning_rate, **extras)
    elif key == "rmsprop":
        optimiser = keras.optimizers.RMSprop(learning_rate, **extras)
    else:
        raise ConfigError(f"[training] optimiser: unknown optimiser '{name}' "
                          f"(available: {', '.join(OPTIMISERS)})")
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimiser)
    return optimiser
