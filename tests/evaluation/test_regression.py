from __future__ import annotations

import math

import numpy as np
import pytest

from niftykit.evaluation import mae, mse, r2, rmse

PRED = np.array([1.0, 2.0, 3.0, 4.0])
REF = np.array([1.0, 3.0, 2.0, 6.0])  # errors 0, -1, 1, -2; mean(REF) = 3


def test_hand_computed_values():
    assert mse(PRED, REF) == pytest.approx(6 / 4)
    assert rmse(PRED, REF) == pytest.approx(math.sqrt(6 / 4))
    assert mae(PRED, REF) == pytest.approx(4 / 4)
    assert r2(PRED, REF) == pytest.approx(1 - 6 / 14)  # SS_tot = 4 + 0 + 1 + 9


def test_any_shape_and_perfect_prediction():
    volume = np.arange(24.0).reshape(2, 3, 4)
    assert mse(volume, volume) == 0.0 and r2(volume, volume) == 1.0


def test_constant_reference_r2_is_nan():
    assert math.isnan(r2(PRED, np.full(4, 2.0)))


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match="shape"):
        mse(PRED, REF[:3])
    with pytest.raises(ValueError, match="at least one"):
        mae(np.array([]), np.array([]))
