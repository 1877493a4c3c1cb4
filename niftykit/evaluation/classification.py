"""Classification metrics over subjects: accuracy, confusion matrix, ROC AUC (numpy/scipy only).

ROC AUC is computed from ranks (the Mann-Whitney U statistic; Hanley and
McNeil, Radiology 1982): the probability that a random positive scores above
a random negative, ties counting one half. It equals the area under the
trapezoidal ROC curve.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.stats import rankdata

__all__ = ["classification_accuracy", "confusion_matrix", "roc_auc"]


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} reference labels but {y_pred.size} predictions")
    if y_true.size == 0:
        raise ValueError("classification metrics need at least one subject")
    return y_true, y_pred


def classification_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of subjects whose predicted class equals the reference class.

    Args:
        y_true: ``(n,)`` reference classes.
        y_pred: ``(n,)`` predicted classes.

    Returns:
        Accuracy in [0, 1].

    Raises:
        ValueError: the lengths differ or are zero.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """Counts of (reference, predicted) class pairs.

    Args:
        y_true: ``(n,)`` reference classes, integers in ``[0, num_classes)``.
        y_pred: ``(n,)`` predicted classes, likewise.
        num_classes: matrix size; None for one more than the largest class seen.

    Returns:
        ``(num_classes, num_classes)`` int64 matrix, rows the reference class
        and columns the predicted class (scikit-learn's layout).

    Raises:
        ValueError: lengths differ, or a class is negative, non-integral or
            not below ``num_classes``.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    both = np.concatenate([y_true, y_pred]).astype(np.float64)
    if not np.all(np.equal(np.mod(both, 1), 0)) or both.min() < 0:
        raise ValueError("classes must be non-negative integers")
    size = int(both.max()) + 1 if num_classes is None else int(num_classes)
    if both.max() >= size:
        raise ValueError(f"class {int(both.max())} is not below num_classes={size}")
    matrix = np.zeros((size, size), np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return matrix


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs positive and negative subjects, got {n_pos} and {n_neg}")
    ranks = rankdata(scores)  # average ranks: ties count one half
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u_statistic / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, binary or one-vs-rest macro average.

    Args:
        y_true: ``(n,)`` reference classes: 0/1 (or booleans) for binary
            scores, integers in ``[0, k)`` for ``(n, k)`` scores.
        scores: ``(n,)`` scores of the positive class, or ``(n, k)`` class
            scores (e.g. probabilities); higher means more likely.

    Returns:
        AUC in [0, 1]; for ``(n, k)`` scores the unweighted mean over classes
        of the AUC of class ``c`` against the rest, ranked by column ``c``.

    Raises:
        ValueError: shapes disagree, labels are out of range, or a class
            (binary: either class) has no subject in ``y_true`` or is every subject.
    """
    y_true, scores = np.asarray(y_true).reshape(-1), np.asarray(scores, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[0] != y_true.size:
        raise ValueError(f"scores must be (n,) or (n, k) with n={y_true.size}, got {scores.shape}")
    if scores.ndim == 1:
        if not np.all(np.isin(y_true, (0, 1))):
            raise ValueError("binary ROC AUC needs reference classes 0 and 1")
        return _binary_auc(y_true.astype(bool), scores)
    classes = scores.shape[1]
    if not np.all(np.isin(y_true, np.arange(classes))):
        raise ValueError(f"reference classes must be integers in [0, {classes}) for {classes} score columns")
    aucs = []
    for c in range(classes):
        try:
            aucs.append(_binary_auc(y_true == c, scores[:, c]))
        except ValueError as exc:
            raise ValueError(f"class {c}: {exc}") from None
    return float(np.mean(aucs))
