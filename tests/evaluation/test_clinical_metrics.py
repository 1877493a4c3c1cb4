"""ROC AUC intervals, operating points and the screening report (niftykit/evaluation/classification.py)."""

import numpy as np
import pytest

from niftykit.evaluation.classification import (_bootstrap_aucs, choose_threshold, delong_variance,
                                                operating_point, roc_auc, roc_auc_ci,
                                                screening_report, wilson_interval)

# Hanley and McNeil, Radiology 143:29-36, 1982, Table 1: 109 CT images rated 1 (definitely
# normal) to 5 (definitely abnormal); published AUC 0.893 with SE 0.032 (their approximation)
HM_NORMAL = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
HM_ABNORMAL = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])


def hanley_mcneil():
    return np.r_[np.zeros(58, int), np.ones(51, int)], np.r_[HM_NORMAL, HM_ABNORMAL].astype(float)


def test_delong_variance_by_hand():
    # positives 0.9, 0.8, 0.4 and negatives 0.7, 0.3, 0.2: V10 = (1, 1, 2/3), V01 = (2/3, 1, 1),
    # AUC = 8/9, both sample variances 1/27, Var = (1/27)/3 + (1/27)/3 = 2/81
    auc, variance = delong_variance([1, 1, 1, 0, 0, 0], [0.9, 0.8, 0.4, 0.7, 0.3, 0.2])
    assert auc == pytest.approx(8 / 9) and variance == pytest.approx(2 / 81)


def test_delong_counts_ties_one_half():
    # positive 0.5 ties negative 0.5: V10 = (1, 0.75), V01 = (0.75, 1) -> AUC 0.875;
    # both sample variances 0.125² · 2 = 1/32, Var = (1/32)/2 + (1/32)/2 = 1/32
    auc, variance = delong_variance([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    assert auc == pytest.approx(0.875) == roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert variance == pytest.approx(1 / 32)


def test_hanley_mcneil_published_example():
    y, ratings = hanley_mcneil()
    auc, low, high = roc_auc_ci(y, ratings)
    assert auc == pytest.approx(0.893, abs=5e-4)
    se = (high - low) / (2 * 1.959964)
    assert se == pytest.approx(0.032, rel=0.1)  # DeLong's SE against their approximation
    assert delong_variance(y, ratings)[1] ** 0.5 == pytest.approx(se)


def test_delong_matches_the_bootstrap_on_a_large_sample():
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.2).astype(int)
    scores = rng.normal(y * 1.0, 1.0)
    _, variance = delong_variance(y, scores)
    boot = _bootstrap_aucs(y.astype(bool), scores, 2000, seed=0)
    assert np.std(boot) == pytest.approx(variance ** 0.5, rel=0.06)
    auc, low, high = roc_auc_ci(y, scores, method="bootstrap", seed=0)
    d_auc, d_low, d_high = roc_auc_ci(y, scores, method="delong")
    assert auc == d_auc and low == pytest.approx(d_low, abs=0.005) and high == pytest.approx(d_high, abs=0.005)


def test_bootstrap_is_seeded_and_stratified():
    y, ratings = hanley_mcneil()
    assert roc_auc_ci(y, ratings, method="bootstrap", seed=3) == roc_auc_ci(y, ratings, method="bootstrap", seed=3)
    assert roc_auc_ci(y, ratings, method="bootstrap", seed=3) != roc_auc_ci(y, ratings, method="bootstrap", seed=4)
    with pytest.raises(ValueError, match="unknown ROC AUC interval method 'jackknife'"):
        roc_auc_ci(y, ratings, method="jackknife")
    with pytest.raises(ValueError, match="needs positive and negative subjects"):
        roc_auc_ci([1, 1], [0.2, 0.3])


def test_perfect_separation_clips_the_interval():
    auc, low, high = roc_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (auc, high) == (1.0, 1.0) and low == 1.0  # DeLong's variance is 0 here


# a hand example: 4 positives (0.9, 0.7, 0.45, 0.2) and 6 negatives (0.6, 0.4, 0.3, 0.1, 0.05, 0.5)
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
S = np.array([0.9, 0.7, 0.45, 0.2, 0.6, 0.4, 0.3, 0.1, 0.05, 0.5])


def test_sensitivity_and_specificity_at_a_threshold():
    point = operating_point(Y, S, 0.5)
    # called positive: 0.9, 0.7 (TP) and 0.6, 0.5 (FP); 0.45, 0.2 missed
    assert (point.tp, point.fn, point.tn, point.fp) == (2, 2, 4, 2)
    assert point.sensitivity == 0.5 and point.specificity == pytest.approx(4 / 6)
    assert point.threshold == 0.5


def test_operating_points_chosen_on_the_roc():
    # sensitivity >= 0.75 needs 3 of 4 positives: the highest such threshold is 0.45
    assert choose_threshold(Y, S, "sensitivity@0.75") == 0.45
    point = operating_point(Y, S, "sensitivity@0.75")
    assert (point.tp, point.fp) == (3, 2) and point.specificity == pytest.approx(4 / 6)
    # specificity >= 0.8 needs 5 of 6 negatives below: just above the 5th lowest (0.5)
    point = operating_point(Y, S, "specificity@0.8")
    assert 0.5 < point.threshold < 0.6 + 1e-12 and (point.tn, point.fp, point.tp) == (5, 1, 2)
    assert operating_point(Y, S, "sensitivity@1").sensitivity == 1.0
    assert operating_point(Y, S, "specificity@1").specificity == 1.0
    with pytest.raises(ValueError, match="operating point 'youden'"):
        choose_threshold(Y, S, "youden")


def test_wilson_interval_known_values():
    # Wilson (1927) / Newcombe (1998) Table I, example 1: 81/263 -> 0.2553 to 0.3662
    low, high = wilson_interval(81, 263)
    assert (low, high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert wilson_interval(0, 10)[0] == 0.0 and np.isnan(wilson_interval(0, 0)[0])


def test_screening_report_rows_and_text():
    report = screening_report(Y, S, point=0.5, roc_ci="delong")
    rows = {row[0]: row for row in report.rows("prob_1")}
    assert list(rows) == ["roc_auc", "sensitivity", "specificity", "threshold"]
    assert float(rows["sensitivity"][1]) == 0.5 and "2/4" in rows["sensitivity"][4]
    assert float(rows["roc_auc"][2]) < float(rows["roc_auc"][1]) < float(rows["roc_auc"][3])
    text = report.text("prob_1")
    assert "ROC AUC" in text and "[95% CI" in text and "sensitivity 0.500" in text
    assert set(report.summary()) == {"roc_auc_ci_low", "roc_auc_ci_high", "sensitivity",
                                     "specificity", "threshold"}
