"""The one bridge from numpy windows to ``tf.data`` batches.

``num_workers`` Python generators (one per ``system.num_threads``), each with
its own seeded random stream and its own share of the subjects, fill a
shuffle buffer of ``queue_length`` windows that mixes subjects before
batching; the next batch is prefetched while the current one trains.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Tuple

import numpy as np
import tensorflow as tf

__all__ = ["window_dataset", "queue_bytes"]

#: name -> (shape of one window without batch, numpy dtype)
Spec = Mapping[str, Tuple[Tuple[int, ...], Any]]
#: (worker index, number of workers) -> endless iterator of window dicts
WindowSource = Callable[[int, int], Iterator[Mapping[str, np.ndarray]]]


def queue_bytes(spec: Spec, queue_length: int) -> int:
    """Memory the shuffle buffer holds when full, in bytes."""
    per_window = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in spec.values())
    return per_window * queue_length


def window_dataset(source: WindowSource, spec: Spec, *, batch_size: int, queue_length: int,
                   num_workers: int = 1, seed: int = 0) -> tf.data.Dataset:
    """An endless dataset of batches ``{name: (batch_size, *shape)}``.

    Args:
        source: called once per worker with ``(worker, num_workers)``; yields
            window dicts whose entries match ``spec`` (extra keys are dropped).
        spec: the window names, shapes and dtypes.
        batch_size: windows per batch (the remainder is never returned: the
            stream is endless).
        queue_length: windows in the shuffle buffer (at least ``batch_size``).
        num_workers: parallel generators.
        seed: shuffle seed.
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

    dataset = tf.data.Dataset.range(num_workers).interleave(
        worker, cycle_length=num_workers, block_length=1,
        num_parallel_calls=num_workers if num_workers > 1 else None, deterministic=True)
    dataset = dataset.shuffle(max(int(queue_length), batch_size), seed=seed)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
