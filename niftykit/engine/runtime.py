"""TensorFlow start-up: import it late, quietly, with the right devices, seeds and precision."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from niftykit.errors import NiftykitError

__all__ = ["import_tensorflow", "precision_policy", "seed_everything"]

_MISSING = ("TensorFlow is not installed: pip install 'niftykit[cpu]' "
            "(or 'niftykit[gpu]' for NVIDIA GPUs)")


def import_tensorflow(cuda_devices: str = "", debug: bool = False) -> Any:
    """Import TensorFlow once, after setting the environment it reads at import.

    Args:
        cuda_devices: ``system.cuda_devices`` (e.g. ``"0,1"``); empty keeps the environment's.
        debug: keep TensorFlow's own start-up logging.

    Raises:
        NiftykitError: TensorFlow is missing (names the extra to install).
    """
    if cuda_devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(cuda_devices)
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with contextlib.nullcontext() if debug else _quiet_stderr():
            import tensorflow as tf
    except ImportError as exc:
        raise NiftykitError(_MISSING) from exc
    if not debug:
        tf.get_logger().setLevel("ERROR")
    return tf


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while TensorFlow's C++ start-up prints its
    oneDNN/absl banners, which ``TF_CPP_MIN_LOG_LEVEL`` no longer suppresses."""
    import sys
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, TensorFlow and Keras (``system.seed``)."""
    import keras
    keras.utils.set_random_seed(int(seed))


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Build layers under Keras' dtype policy ``name`` (``float32``, ``mixed_bfloat16``,
    ``mixed_float16``), restoring the previous policy afterwards."""
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
