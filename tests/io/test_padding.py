"""Tests for niftykit.io.padding: volume_padding_size, volume_padding_to_size and cropping back."""

from __future__ import annotations

import numpy as np
import pytest

from niftykit.io.padding import PAD_MODES, crop_array, pad_array, pad_widths


def test_padding_then_pad_to_with_odd_voxel_after() -> None:
    before, after = pad_widths((10, 6, 4), padding=(1, 0, 2), pad_to=(15, 9, 3))
    assert before == (2, 1, 2) and after == (3, 2, 2)


def test_scalar_sizes_broadcast() -> None:
    assert pad_widths((4, 4, 4), padding=2, pad_to=10) == ((3, 3, 3), (3, 3, 3))


def test_axis_of_size_one_is_never_padded() -> None:
    assert pad_widths((8, 8, 1), padding=(2, 2, 2), pad_to=(0, 0, 5)) == ((2, 2, 0), (2, 2, 0))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_then_crop_is_exact(mode: str) -> None:
    array = np.random.default_rng(0).normal(size=(5, 4, 3, 2)).astype(np.float32)
    padded = pad_array(array, (1, 0, 3), (2, 1, 0), mode)
    assert padded.shape == (8, 5, 6, 2) and padded.dtype == np.float32 and padded.flags.c_contiguous
    assert np.array_equal(crop_array(padded, (1, 0, 3), (2, 1, 0)), array)


def test_constant_pads_with_zero_and_minimum_with_line_minimum() -> None:
    array = np.arange(1, 25, dtype=np.int32).reshape(2, 3, 4, 1)
    assert np.all(pad_array(array, (0, 0, 1), (0, 0, 0), "constant")[:, :, 0] == 0)
    assert np.array_equal(pad_array(array, (0, 0, 1), (0, 0, 0), "minimum")[:, :, 0], array.min(axis=2))


def test_no_padding_returns_the_array() -> None:
    array = np.zeros((2, 2, 2, 1))
    assert pad_array(array, (0, 0, 0), (0, 0, 0)) is array


def test_errors() -> None:
    with pytest.raises(ValueError, match="volume_padding_mode 'empty'"):
        pad_array(np.zeros((2, 2, 2, 1)), (1, 0, 0), (0, 0, 0), "empty")
    with pytest.raises(ValueError, match="cannot crop"):
        crop_array(np.zeros((4, 2, 2, 1)), (2, 0, 0), (2, 0, 0))
    with pytest.raises(ValueError, match="3 values"):
        pad_widths((4, 4, 4), padding=(1, 1))
