"""Regression metrics between a predicted and a reference array (numpy only).

NiftyNet's regression evaluations (``mse``, ``rmse``, ``mae``) plus the
coefficient of determination ``r2``. Values are in the units of the images
(squared for ``mse``); every voxel counts once, NaN inputs propagate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mse", "rmse", "mae", "r2"]


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if pred.size == 0:
        raise ValueError("regression metrics need at least one value")
    return pred, ref


def mse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean squared error ``mean((pred - ref)²)``.

    Args:
        pred: predicted values, any shape, e.g. ``(x, y, z)``.
        ref: reference values of the same shape.

    Returns:
        The error, in squared image units.

    Raises:
        ValueError: the shapes differ or the arrays are empty.
    """
    pred, ref = _pair(pred, ref)
    return float(np.mean((pred - ref) ** 2))


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root mean squared error ``sqrt(mse)``, in image units (arguments as :func:`mse`)."""
    return float(np.sqrt(mse(pred, ref)))


def mae(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error ``mean(|pred - ref|)``, in image units (arguments as :func:`mse`)."""
    pred, ref = _pair(pred, ref)
    return float(np.mean(np.abs(pred - ref)))


def r2(pred: np.ndarray, ref: np.ndarray) -> float:
    """Coefficient of determination ``1 - Σ(ref - pred)² / Σ(ref - mean(ref))²``.

    Args:
        pred: predicted values, any shape.
        ref: reference values of the same shape.

    Returns:
        R² (1 for a perfect prediction, unbounded below); NaN when the
        reference is constant (the ratio is undefined).

    Raises:
        ValueError: the shapes differ or the arrays are empty.
    """
    pred, ref = _pair(pred, ref)
    total = float(np.sum((ref - ref.mean()) ** 2))
    if total == 0:
        return float("nan")
    return 1.0 - float(np.sum((ref - pred) ** 2)) / total
