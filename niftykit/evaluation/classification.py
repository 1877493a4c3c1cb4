"""Classification metrics over subjects: accuracy, confusion matrix, ROC AUC (numpy/scipy only).

ROC AUC is computed from ranks (the Mann-Whitney U statistic; Hanley and
McNeil, Radiology 1982): the probability that a random positive scores above
a random negative, ties counting one half. It equals the area under the
trapezoidal ROC curve.

Clinical metrics of a binary classifier (screening, e.g. CAD4TB chest X-rays;
Hogeweg et al., IEEE TMI 34(12), 2015): :func:`roc_auc_ci` gives the AUC with a
confidence interval, by DeLong's variance (DeLong, DeLong and Clarke-Pearson,
Biometrics 44(3), 1988, computed from midranks as Sun and Xu, IEEE SPL 21(11),
2014; interval ``AUC ± z·SE`` clipped to [0, 1], as pROC's default) or by a
stratified bootstrap (positives and negatives resampled apart, percentile
interval, fixed seed). :func:`choose_threshold` turns an operating point
(``0.5``, ``sensitivity@0.95``, ``specificity@0.9``) into a threshold and
:func:`operating_point` gives sensitivity and specificity there, each with a
Wilson score interval (Wilson, JASA 1927). A threshold chosen on the ROC of the
subjects it is then scored on is optimistic: choose it on validation subjects
and give it as a number to score a test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from scipy.stats import norm, rankdata

__all__ = ["classification_accuracy", "confusion_matrix", "roc_auc", "roc_auc_ci",
           "delong_variance", "choose_threshold", "operating_point", "OperatingPoint",
           "wilson_interval", "screening_report", "ScreeningReport"]


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


def _binary(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class mask and float scores of a binary problem, checked."""
    y_true, scores = np.asarray(y_true).reshape(-1), np.asarray(scores, dtype=np.float64).reshape(-1)
    if y_true.size != scores.size or y_true.size == 0:
        raise ValueError(f"{y_true.size} reference labels but {scores.size} scores")
    if not np.all(np.isin(y_true, (0, 1))):
        raise ValueError("binary metrics need reference classes 0 (negative) and 1 (positive)")
    positive = y_true.astype(bool)
    if positive.all() or not positive.any():
        raise ValueError(f"needs positive and negative subjects, got {int(positive.sum())} and "
                         f"{int((~positive).sum())}")
    return positive, scores


def delong_variance(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC AUC and its DeLong variance (DeLong et al., Biometrics 1988).

    With ``m`` positives ``X_i`` and ``n`` negatives ``Y_j`` and ``ψ(x, y)`` = 1 if
    ``x > y``, ½ if equal, 0 otherwise, the structural components are
    ``V10_i = mean_j ψ(X_i, Y_j)`` and ``V01_j = mean_i ψ(X_i, Y_j)``; the AUC is
    ``mean_i V10_i`` and ``Var = s²(V10) / m + s²(V01) / n`` (sample variances).
    The components come from midranks (Sun and Xu, IEEE SPL 2014): ``O(N log N)``.

    Args:
        y_true: ``(N,)`` 0/1 (1 positive).
        scores: ``(N,)`` scores, higher meaning more likely positive.

    Returns:
        ``(auc, variance)``.

    Raises:
        ValueError: not binary, lengths differ, or one class is missing.
    """
    positive, scores = _binary(y_true, scores)
    x, y = scores[positive], scores[~positive]
    m, n = x.size, y.size
    ranks = rankdata(np.concatenate([x, y]))
    v10 = (ranks[:m] - rankdata(x)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(y)) / m
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    return float(v10.mean()), s10 / m + s01 / n


def _bootstrap_aucs(positive: np.ndarray, scores: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y = scores[positive], scores[~positive]
    xs = x[rng.integers(0, x.size, (n_bootstrap, x.size))]
    ys = y[rng.integers(0, y.size, (n_bootstrap, y.size))]
    ranks = rankdata(np.concatenate([xs, ys], axis=1), axis=1)
    u = ranks[:, :x.size].sum(axis=1) - x.size * (x.size + 1) / 2
    return u / (x.size * y.size)


def roc_auc_ci(y_true: np.ndarray, scores: np.ndarray, level: float = 0.95, method: str = "delong",
               n_bootstrap: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Binary ROC AUC with a confidence interval.

    Args:
        y_true: ``(N,)`` 0/1 (1 positive).
        scores: ``(N,)`` scores of the positive class.
        level: the interval's coverage, e.g. 0.95.
        method: ``"delong"``: ``AUC ± z·sqrt(Var)`` with DeLong's variance
            (:func:`delong_variance`), clipped to [0, 1]; ``"bootstrap"``: the
            percentile interval of ``n_bootstrap`` stratified resamples (positives
            and negatives drawn apart, so each keeps its count) from ``seed``.
        n_bootstrap, seed: the bootstrap's resamples and random seed.

    Returns:
        ``(auc, low, high)``.

    Raises:
        ValueError: an unknown method, a level outside (0, 1), or the errors of
            :func:`delong_variance`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    auc, variance = delong_variance(y_true, scores)
    if method == "delong":
        half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(variance)
        return auc, max(0.0, auc - half), min(1.0, auc + half)
    if method == "bootstrap":
        positive, values = _binary(y_true, scores)
        aucs = _bootstrap_aucs(positive, values, n_bootstrap, seed)
        low, high = np.quantile(aucs, [0.5 - level / 2, 0.5 + level / 2])
        return auc, float(low), float(high)
    raise ValueError(f"unknown ROC AUC interval method '{method}' (delong, bootstrap)")


def wilson_interval(successes: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / total`` (Wilson, JASA 1927).

    Returns:
        ``(low, high)`` in [0, 1]; ``(nan, nan)`` when ``total`` is 0.
    """
    if total == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity and specificity at one threshold (a subject is positive when its
    score is at least ``threshold``), with the counts and Wilson intervals."""

    threshold: float
    sensitivity: float
    specificity: float
    tp: int
    fn: int
    tn: int
    fp: int
    sensitivity_ci: tuple[float, float]
    specificity_ci: tuple[float, float]


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, point: Union[float, str]) -> float:
    """The threshold of an operating point.

    Args:
        y_true: ``(N,)`` 0/1 (1 positive).
        scores: ``(N,)`` scores of the positive class.
        point: a threshold (a number, returned as is), ``"sensitivity@S"``: the
            highest threshold whose sensitivity is at least S (the fewest false
            positives that catch that share of positives), or ``"specificity@S"``:
            the lowest threshold whose specificity is at least S.

    Returns:
        The threshold; subjects with ``score >= threshold`` are called positive.

    Raises:
        ValueError: an unreadable point, S outside [0, 1], or the errors of
            :func:`delong_variance`.
    """
    if not isinstance(point, str):
        return float(point)
    what, _, target = point.partition("@")
    try:
        share = float(target)
    except ValueError:
        share = -1.0
    if what not in ("sensitivity", "specificity") or not 0 <= share <= 1:
        raise ValueError(f"operating point '{point}': expected a threshold, sensitivity@S or "
                         "specificity@S with S in [0, 1]")
    positive, values = _binary(y_true, scores)
    if what == "sensitivity":
        ranked = np.sort(values[positive])[::-1]
        return float(ranked[max(math.ceil(share * ranked.size - 1e-9), 1) - 1])
    ranked = np.sort(values[~positive])
    k = math.ceil(share * ranked.size - 1e-9)
    return float(values.min()) if k == 0 else float(np.nextafter(ranked[k - 1], np.inf))


def operating_point(y_true: np.ndarray, scores: np.ndarray, point: Union[float, str] = 0.5,
                    level: float = 0.95) -> OperatingPoint:
    """Sensitivity and specificity at an operating point (see :func:`choose_threshold`).

    Args:
        y_true: ``(N,)`` 0/1 (1 positive).
        scores: ``(N,)`` scores of the positive class (e.g. its probability).
        point: a threshold, ``"sensitivity@S"`` or ``"specificity@S"``.
        level: coverage of the Wilson intervals.

    Returns:
        The :class:`OperatingPoint`.
    """
    positive, values = _binary(y_true, scores)
    threshold = choose_threshold(positive.astype(int), values, point)
    called = values >= threshold
    tp, fn = int(np.sum(called & positive)), int(np.sum(~called & positive))
    tn, fp = int(np.sum(~called & ~positive)), int(np.sum(called & ~positive))
    return OperatingPoint(threshold, tp / (tp + fn), tn / (tn + fp), tp, fn, tn, fp,
                          wilson_interval(tp, tp + fn, level), wilson_interval(tn, tn + fp, level))


@dataclass(frozen=True)
class ScreeningReport:
    """A binary classifier's clinical metrics: the ROC AUC with its interval and the
    operating point (either may be None when not asked for)."""

    positives: int
    negatives: int
    auc: Optional[tuple[float, float, float]] = None
    roc_ci: str = "delong"
    point: Optional[OperatingPoint] = None
    point_spec: Union[float, str] = 0.5

    def _at(self) -> list[tuple[str, float, tuple[float, float], int, int]]:
        p = self.point
        return [] if p is None else [("sensitivity", p.sensitivity, p.sensitivity_ci, p.tp, p.tp + p.fn),
                                     ("specificity", p.specificity, p.specificity_ci, p.tn, p.tn + p.fp)]

    def summary(self) -> dict[str, float]:
        """``roc_auc_ci_low``, ``roc_auc_ci_high``, ``sensitivity``, ``specificity``, ``threshold``."""
        out: dict[str, float] = {}
        if self.auc is not None:
            out.update(roc_auc_ci_low=self.auc[1], roc_auc_ci_high=self.auc[2])
        out.update({name: value for name, value, *_ in self._at()})
        if self.point is not None:
            out["threshold"] = self.point.threshold
        return out

    def text(self, score: str = "score") -> str:
        """Two lines, e.g. ``ROC AUC 0.912 [95% CI 0.851, 0.973] (DeLong; ...)`` and
        ``at operating point 0.5 (score >= 0.5): sensitivity 0.833 [...] (10/12), ...``."""
        lines = []
        if self.auc is not None:
            method = "DeLong" if self.roc_ci == "delong" else "stratified bootstrap"
            lines.append(f"ROC AUC {self.auc[0]:.3f} [95% CI {self.auc[1]:.3f}, {self.auc[2]:.3f}] "
                         f"({method}; {self.positives} positive, {self.negatives} negative)")
        if self.point is not None:
            lines.append(f"at operating point {self.point_spec} ({score} >= {self.point.threshold:.4g}): "
                         + ", ".join(f"{name} {value:.3f} [95% CI {ci[0]:.3f}, {ci[1]:.3f}] ({k}/{n})"
                                     for name, value, ci, k, n in self._at()))
        return "\n".join(lines)

    def rows(self, score: str = "score") -> list[list[str]]:
        """CSV rows ``metric,value,ci_low,ci_high,detail``."""
        rows = []
        if self.auc is not None:
            rows.append(["roc_auc", *(f"{v:.6g}" for v in self.auc), self.roc_ci])
        for name, value, ci, k, n in self._at():
            rows.append([name, f"{value:.6g}", f"{ci[0]:.6g}", f"{ci[1]:.6g}",
                         f"{k}/{n} with {score} >= {self.point.threshold:.6g}; Wilson interval"])
        if self.point is not None:
            rows.append(["threshold", f"{self.point.threshold:.6g}", "", "", str(self.point_spec)])
        return rows


def screening_report(y_true: np.ndarray, scores: np.ndarray, point: Union[float, str, None] = 0.5,
                     roc_ci: Optional[str] = "delong", seed: int = 0) -> ScreeningReport:
    """The ROC AUC with its 95% interval and sensitivity/specificity at an operating point.

    Args:
        y_true: ``(N,)`` 0/1 (1 positive).
        scores: ``(N,)`` scores of the positive class.
        point: the operating point (:func:`choose_threshold`), or None to leave it out.
        roc_ci: ``"delong"`` or ``"bootstrap"`` (:func:`roc_auc_ci`), or None to leave
            the AUC out.
        seed: the bootstrap's seed.

    Raises:
        ValueError: as :func:`roc_auc_ci` and :func:`operating_point`.
    """
    positive, values = _binary(y_true, scores)
    y = positive.astype(int)
    return ScreeningReport(
        int(positive.sum()), int((~positive).sum()),
        None if roc_ci is None else roc_auc_ci(y, values, method=roc_ci, seed=seed), roc_ci or "delong",
        None if point is None else operating_point(y, values, point), 0.5 if point is None else point)
