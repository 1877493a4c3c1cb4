"""TensorFlow start-up: import it late, quietly, with the right devices, seeds and precision."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from niftykit.errors import NiftykitError

__all__ = ["import_tensorflow", "precision_policy", "seed_everything", "accurate_bias_gradient"]

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


def _bias_add_gradient(op: Any, grad: Any) -> tuple:
    """Gradient of ``BiasAdd``: the incoming gradient, and its sum over all but the channel
    axis accumulated in float32 (see :func:`accurate_bias_gradient`)."""
    import tensorflow as tf

    try:
        data_format = op.get_attr("data_format")
    except ValueError:
        data_format = None
    if isinstance(data_format, bytes):
        data_format = data_format.decode()
    data_format = data_format or "NHWC"  # eager ops record the default as None
    rank = grad.shape.rank
    channel = 1 if data_format.startswith("NC") else rank - 1
    axes = [axis for axis in range(rank) if axis != channel]
    # tf.reduce_sum accumulates bfloat16 in float32 (rounding once at the end, as the cast
    # would): 2.4x faster than cast-then-sum on 2 x 64^3 x 9; float16 it sums in float16
    # (92 % off there), so float16 is cast (measured here, 2026-11-26)
    summed = tf.reduce_sum(tf.cast(grad, tf.float32) if grad.dtype == tf.float16 else grad,
                           axis=axes)
    return grad, tf.cast(summed, grad.dtype)


def accurate_bias_gradient(tf: Any) -> bool:
    """Make TensorFlow's gradient of ``BiasAdd`` (every Keras convolution and dense layer
    with a bias) sum in float32; returns whether the replacement is in place.

    TensorFlow's CPU ``BiasAddGrad`` kernel accumulates bfloat16 in bfloat16: the bias
    gradient of a 2 × 64³ × 16 tensor of values around 0.3 came out 2,304 instead of
    158,101 (each addition to a sum above 256 rounds away; PyTorch had and fixed the same
    bug, pytorch/pytorch#68048). Under ``mixed_bfloat16`` every bias of a 3-D network was
    trained on a wrong gradient. ``tf.reduce_sum`` sums bfloat16 in float32 (float16 is cast
    to float32 first) and is faster: for 2 × 64³ × 9 in bfloat16 the kernel took 7.1 ms, a
    float32 cast and sum 1.0 (0.55 summed directly, a later measurement), and in float32
    0.5 against 3.7 ms, where the kernel is merely slow for few channels (measured here,
    2026-11-26). TensorFlow offers no public way to replace a registered
    gradient, so the entry in its gradient registry is swapped (process-wide: other
    TensorFlow code in the process gets the accurate gradient too). Where that private
    registry has changed shape, nothing is swapped and False is returned;
    ``tests/engine/test_bias_gradient.py`` fails then.
    """
    try:
        from tensorflow.python.framework import ops as tf_ops

        entry = tf_ops._gradient_registry._registry["BiasAdd"]  # noqa: SLF001
        if "type" not in entry:
            return False
        entry["type"] = _bias_add_gradient
        return True
    except (ImportError, AttributeError, KeyError, TypeError):
        return False
