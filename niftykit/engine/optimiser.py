"""Optimisers by NiftyNet's names (``training.optimiser``)."""

from __future__ import annotations

from typing import Any

from niftykit.errors import ConfigError

__all__ = ["make_optimiser", "OPTIMISERS"]

OPTIMISERS = ("adam", "adamw", "gradientdescent", "sgd", "momentum", "nesterov", "adagrad", "rmsprop")


def make_optimiser(name: str, lr: float) -> Any:
    """A Keras optimiser. ``momentum`` and ``nesterov`` use momentum 0.9 as NiftyNet did."""
    import keras
    key = name.lower()
    if key == "adam":
        return keras.optimizers.Adam(lr)
    if key == "adamw":
        return keras.optimizers.AdamW(lr)
    if key in ("gradientdescent", "sgd"):
        return keras.optimizers.SGD(lr)
    if key == "momentum":
        return keras.optimizers.SGD(lr, momentum=0.9)
    if key == "nesterov":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    if key == "adagrad":
        return keras.optimizers.Adagrad(lr)
    if key == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    raise ConfigError(f"[training] optimiser: unknown optimiser '{name}' "
                      f"(available: {', '.join(OPTIMISERS)})")
