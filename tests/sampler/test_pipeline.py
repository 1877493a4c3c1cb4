"""The patch queue: byte bound, subject mixing, seeded repeats, per-replica batches."""

import subprocess
import sys
import textwrap

import numpy as np

from niftykit.sampler.pipeline import plan_queue, window_bytes, window_dataset

SPEC = {"image": ((8, 8, 8, 1), np.float32), "label": ((8, 8, 8, 1), np.int32)}


def _source(n_subjects: int, per_subject: int):
    """Windows whose every voxel holds the subject's index (so batches show the mixing)."""
    def source(worker: int, workers: int):
        rng = np.random.default_rng([7, worker])
        mine = list(range(n_subjects))[worker::workers]
        while True:
            for subject in rng.permutation(mine):
                for _ in range(per_subject):
                    yield {"image": np.full((8, 8, 8, 1), subject, np.float32),
                           "label": np.full((8, 8, 8, 1), subject, np.int32),
                           "location": np.zeros(6, np.int32)}
    return source


def test_queue_capacity_is_bounded_in_bytes():
    assert window_bytes(SPEC) == 2 * 8 ** 3 * 4
    roomy = plan_queue(SPEC, queue_mb=64, queue_length=5, samples_per_volume=4, batch_size=2)
    assert roomy.capacity == 32                      # 8 subjects x 4 windows
    tight = plan_queue(SPEC, queue_mb=0.02, queue_length=5, samples_per_volume=4, batch_size=2)
    assert tight.capacity == int(0.02 * 2**20) // window_bytes(SPEC)
    assert tight.bytes <= 0.02 * 2**20
    assert plan_queue(SPEC, queue_mb=0.001, queue_length=5, samples_per_volume=4,
                      batch_size=2).capacity == 2     # never below one batch
    assert "MB" in roomy.describe()


def _first_batches(n_batches: int, workers: int, seed: int = 0):
    dataset = window_dataset(_source(50, 4), SPEC, batch_size=4, capacity=32,
                             num_workers=workers, seed=seed)
    return [batch["image"].numpy()[:, 0, 0, 0, 0] for batch in dataset.take(n_batches)]


def test_queue_mixes_subjects_and_repeats_with_a_seed():
    batches = _first_batches(20, workers=1)
    subjects_per_batch = [len(set(b.tolist())) for b in batches]
    assert np.mean(subjects_per_batch) > 2.5        # without the queue: 1 subject per batch
    seen = set(np.concatenate(batches).tolist())
    assert len(seen) >= 15                          # 50 subjects stream through
    again = _first_batches(20, workers=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = _first_batches(20, workers=1, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))


def test_two_workers_share_the_subjects():
    values = np.concatenate(_first_batches(25, workers=2))
    assert {int(v) % 2 for v in values} == {0, 1}   # worker 0 holds even subjects, worker 1 odd


def test_per_replica_batches_under_mirrored_strategy():
    code = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from niftykit.sampler.pipeline import window_dataset
        spec = {"image": ((4, 4, 4, 1), np.float32)}
        def source(worker, workers):
            while True:
                yield {"image": np.zeros((4, 4, 4, 1), np.float32)}
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        data = window_dataset(source, spec, batch_size=3, capacity=8, strategy=strategy)
        batch = next(iter(data))
        shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch["image"])]
        print("SHAPES", shapes)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SHAPES [(3, 4, 4, 4, 1), (3, 4, 4, 4, 1)]" in result.stdout
