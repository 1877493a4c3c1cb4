"""Fixtures for the sampler tests: small in-memory volumes."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def image() -> np.ndarray:
    """A (16, 20, 12, 2) float32 volume whose voxels are all distinct."""
    values = np.arange(16 * 20 * 12 * 2, dtype=np.float32)
    return np.random.default_rng(0).permutation(values).reshape(16, 20, 12, 2)


@pytest.fixture
def label(image: np.ndarray) -> np.ndarray:
    """A (16, 20, 12, 1) int32 label map computed voxel-wise from ``image``."""
    return (image[..., :1] % 7).astype(np.int32)
