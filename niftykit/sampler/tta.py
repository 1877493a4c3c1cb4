"""Test-time augmentation by flipping (nnU-Net's mirroring).

nnU-Net (Isensee et al., Nature Methods 18, 2021) averages the predictions
of a window and of its mirror images along every spatial axis at inference
("mirror TTA", ``use_mirroring``); MONAI's ``TestTimeAugmentation`` and
TorchIO do the same with random flips. Here the flips are exhaustive and
deterministic: all ``2**k`` combinations of the ``k`` chosen axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

__all__ = ["PredictFn", "flip_tta"]

#: A batch predictor: ``(B, x, y, z, c)`` windows -> ``(B, ox, oy, oz, C)`` outputs.
PredictFn = Callable[[np.ndarray], np.ndarray]


def _spatial_axes(axes: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(a) for a in axes)
    if len(set(values)) != len(values) or not all(a in (0, 1, 2) for a in values):
        raise ValueError(f"flip axes must be distinct spatial axes among 0 (x), 1 (y), 2 (z), got {tuple(axes)}")
    return values


def _flipped_prediction(predict: PredictFn, batch: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``predict`` of the batch flipped along array ``axes``, flipped back."""
    if not axes:
        return np.asarray(predict(batch))
    output = np.asarray(predict(np.ascontiguousarray(np.flip(batch, axes))))
    return np.flip(output, axes)


def flip_tta(predict: PredictFn, axes: Sequence[int] = (0, 1, 2)) -> PredictFn:
    """Wrap a predictor so that it averages over all flips of the given axes.

    For every subset of ``axes`` the batch is flipped along those axes, run
    through ``predict``, and the output flipped back; the ``2**k`` outputs are
    averaged. Axes of size 1 in the batch (2-D windows along z) are skipped.
    Outputs smaller than the window (valid convolutions) must stay centred.

    Args:
        predict: ``(B, x, y, z, c)`` -> ``(B, ox, oy, oz, C)``.
        axes: spatial axes to flip, 0 = x, 1 = y, 2 = z.

    Returns:
        A predictor with the same signature whose float32 output is the
        flip-averaged ``(B, ox, oy, oz, C)``.

    Raises:
        ValueError: an axis is not 0, 1 or 2, or is repeated; or (when called)
            the batch is not ``(B, x, y, z, c)``.
    """
    spatial = _spatial_axes(axes)

    def predict_flipped(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if batch.ndim != 5:
            raise ValueError(f"flip_tta needs a (B, x, y, z, c) batch, got shape {batch.shape}")
        flippable = [a + 1 for a in spatial if batch.shape[a + 1] > 1]
        subsets = [s for k in range(len(flippable) + 1) for s in combinations(flippable, k)]
        total = _flipped_prediction(predict, batch, subsets[0]).astype(np.float32, copy=True)
        for subset in subsets[1:]:
            total += _flipped_prediction(predict, batch, subset)
        total /= len(subsets)
        return total

    return predict_flipped
