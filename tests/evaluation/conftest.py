"""Fixtures for the evaluation tests: tiny label maps written as NIfTI."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest


@pytest.fixture
def write_label(tmp_path: Path) -> Callable[..., Path]:
    """Write an integer label map as ``tmp_path/name`` (identity affine unless given)."""

    def write(name: str, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
        path = tmp_path / name
        nib.save(nib.Nifti1Image(data.astype(np.int16), np.eye(4) if affine is None else affine), str(path))
        return path

    return write


@pytest.fixture
def reference() -> np.ndarray:
    """(16, 16, 16) reference: label 1 a 4x4x4 cube (64 voxels), label 2 a 2x2x2 cube (8 voxels)."""
    data = np.zeros((16, 16, 16), np.int32)
    data[2:6, 2:6, 2:6] = 1
    data[10:12, 10:12, 10:12] = 2
    return data
