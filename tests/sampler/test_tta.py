from __future__ import annotations

import numpy as np
import pytest

from niftykit.sampler.tta import flip_tta


def ramp_network(calls):
    """Not flip-equivariant: adds the x index to every voxel."""
    def predict(batch):
        calls.append(batch.copy())
        return batch + np.arange(batch.shape[1], dtype=np.float32).reshape(1, -1, 1, 1, 1)
    return predict


def test_identity_network_is_unchanged():
    batch = np.random.default_rng(0).normal(size=(2, 5, 6, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(flip_tta(lambda b: b)(batch), batch, rtol=1e-6, atol=1e-6)


def test_non_equivariant_network_is_flip_averaged():
    batch = np.random.default_rng(1).normal(size=(2, 5, 6, 7, 1)).astype(np.float32)
    calls = []
    result = flip_tta(ramp_network(calls))(batch)
    assert len(calls) == 8 and result.dtype == np.float32
    assert sum(np.array_equal(c, batch[:, ::-1]) for c in calls) == 1  # the x flip alone
    np.testing.assert_allclose(result, batch + (5 - 1) / 2, rtol=1e-6, atol=1e-6)


def test_flipping_only_other_axes_keeps_the_ramp():
    batch = np.random.default_rng(2).normal(size=(1, 5, 6, 7, 2)).astype(np.float32)
    calls = []
    result = flip_tta(ramp_network(calls), axes=(1, 2))(batch)
    assert len(calls) == 4
    np.testing.assert_allclose(result, ramp_network([])(batch), rtol=1e-6, atol=1e-6)


def test_axes_of_size_one_are_skipped():
    batch = np.random.default_rng(3).normal(size=(3, 6, 4, 1, 1)).astype(np.float32)
    calls = []
    result = flip_tta(ramp_network(calls))(batch)
    assert len(calls) == 4
    np.testing.assert_allclose(result, batch + 2.5, rtol=1e-6, atol=1e-6)


def test_outputs_with_other_channels_are_flipped_back():
    batch = np.random.default_rng(4).normal(size=(2, 4, 5, 6, 1)).astype(np.float32)
    def two_class(b):
        return np.concatenate([b, -b], axis=-1)
    np.testing.assert_allclose(flip_tta(two_class)(batch), two_class(batch), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axes", [(0, 0), (3,), (-1,)])
def test_bad_axes_are_refused(axes):
    with pytest.raises(ValueError, match="spatial axes"):
        flip_tta(lambda b: b, axes)


def test_a_batch_without_channels_is_refused():
    with pytest.raises(ValueError, match=r"\(B, x, y, z, c\)"):
        flip_tta(lambda b: b)(np.zeros((2, 4, 4, 4)))
