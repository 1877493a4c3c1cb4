"""The one bridge from numpy windows to ``tf.data`` batches: the patch queue.

``num_workers`` Python generators (``system.num_threads``), each with its own
seeded random stream and its own share of the subjects, draw windows
(sampling, augmentation and cropping are numpy/scipy work that releases the
GIL, so workers run in parallel). Their windows are interleaved into a
shuffle buffer that mixes subjects; its capacity (eight subjects' windows by
default) is bounded in bytes by ``system.queue_size_mb`` and reported in
windows and MB at start. Batches
are prefetched while the network trains on the current one. Under a
``tf.distribute`` strategy the global batch is ``batch_size`` × replicas and
each replica receives ``batch_size`` windows.

With one worker and a fixed seed the sequence of windows is the same on
every run (deterministic interleave, seeded shuffle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

__all__ = ["window_dataset", "window_bytes", "QueuePlan", "plan_queue"]

#: name -> (shape of one window without batch, numpy dtype)
Spec = Mapping[str, Tuple[Tuple[int, ...], Any]]
#: (worker index, number of workers) -> endless iterator of window dicts
WindowSource = Callable[[int, int], Iterator[Mapping[str, np.ndarray]]]


def window_bytes(spec: Spec) -> int:
    """Bytes of one window (all its named arrays)."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in spec.values())


@dataclass(frozen=True)
class QueuePlan:
    """How many windows the shuffle buffer holds, and what that costs.

    Attributes:
        capacity: windows in the shuffle buffer.
        bytes: memory of a full buffer.
        window_bytes: memory of one window.
    """

    capacity: int
    bytes: int
    window_bytes: int

    def describe(self) -> str:
        return (f"patch queue: {self.capacity} windows of {self.window_bytes / 2**20:.2f} MB, "
                f"about {self.bytes / 2**20:.0f} MB when full")


def plan_queue(spec: Spec, *, queue_mb: float, queue_length: int, samples_per_volume: int,
               batch_size: int) -> QueuePlan:
    """The shuffle buffer's capacity: enough windows to mix eight subjects
    (8 × ``samples_per_volume``, and at least NiftyNet's ``queue_length`` and four
    batches), but never more than fit in ``queue_mb`` (nor fewer than one batch)."""
    size = max(1, window_bytes(spec))
    wanted = max(int(queue_length), 8 * int(samples_per_volume), 4 * int(batch_size))
    capacity = max(min(wanted, int(queue_mb * 2**20) // size), int(batch_size), 1)
    return QueuePlan(capacity=capacity, bytes=capacity * size, window_bytes=size)


def window_dataset(source: WindowSource, spec: Spec, *, batch_size: int, capacity: int,
                   num_workers: int = 1, seed: int = 0, strategy: Optional[Any] = None) -> Any:
    """An endless stream of batches ``{name: (batch, *shape)}``.

    Args:
        source: called once per worker with ``(worker, num_workers)``; yields
            window dicts whose entries match ``spec`` (extra keys are dropped).
        spec: the window names, shapes and dtypes.
        batch_size: windows per batch per replica.
        capacity: windows in the shuffle buffer (see :func:`plan_queue`).
        num_workers: parallel generators.
        seed: shuffle seed.
        strategy: a ``tf.distribute.Strategy``; the result is then a distributed
            dataset giving each replica ``batch_size`` windows.
    """
    names = list(spec)
    signature = {name: tf.TensorSpec(shape, tf.as_dtype(np.dtype(dtype)))
                 for name, (shape, dtype) in spec.items()}
    num_workers = max(1, int(num_workers))

    def worker(index: Any) -> tf.data.Dataset:
        def generate(i: Any) -> Iterator[dict]:
            for window in source(int(i), num_workers):
                yield {name: window[name] for name in names}
        return tf.data.Dataset.from_generator(generate, args=(index,), output_signature=signature)

    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    parallel = dict(num_parallel_calls=num_workers, deterministic=True) if num_workers > 1 else {}
    dataset = tf.data.Dataset.range(num_workers).interleave(
        worker, cycle_length=num_workers, block_length=1, **parallel)
    dataset = dataset.shuffle(max(int(capacity), batch_size * replicas), seed=seed)
    dataset = dataset.batch(batch_size * replicas, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    if strategy is not None:
        return strategy.experimental_distribute_dataset(dataset)
    return dataset
