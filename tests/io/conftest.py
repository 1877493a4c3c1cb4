"""Fixtures for the io tests: tiny NIfTI files written with nibabel itself."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture
def affine() -> np.ndarray:
    """An oblique voxel-to-mm affine with spacing (1.5, 0.8, 2.0) mm."""
    angle = np.deg2rad(20.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]]
    )
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([1.5, 0.8, 2.0])
    matrix[:3, 3] = [-12.0, 30.5, 7.25]
    return matrix


@pytest.fixture
def write_nifti(tmp_path: Path, affine: np.ndarray) -> Callable[..., Path]:
    """Write ``data`` as ``tmp_path/name`` with nibabel (not niftykit's writer)."""

    def write(name: str, data: np.ndarray, matrix: np.ndarray | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine if matrix is None else matrix), str(path))
        return path

    return write


@pytest.fixture
def volume() -> np.ndarray:
    """A (16, 20, 12) float32 volume with distinct values along every axis."""
    return np.random.default_rng(0).normal(size=(16, 20, 12)).astype(np.float32)
