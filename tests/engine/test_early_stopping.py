import pytest

from niftykit.engine.early_stopping import EarlyStopper, generalisation_loss, should_stop
from niftykit.errors import ConfigError


@pytest.mark.parametrize("mode, rising, falling", [
    ("mean", [1.0, 0.8, 0.9, 0.95], [1.0, 0.8, 0.9, 0.85]),
    ("median", [1.0, 0.5, 0.9, 0.95], [1.0, 0.5, 0.9, 0.85]),
    # 5th-95th percentile trimming drops the 10.0 outlier (and the 0.1): mean of 0.5, 0.6 -> 0.55
    ("robust_mean", [10.0, 0.5, 0.6, 0.1, 0.56], [10.0, 0.5, 0.6, 0.1, 0.54]),
    ("generalisation_loss", [1.0, 0.5, 0.62], [1.0, 0.5, 0.58]),
])
def test_threshold_modes(mode, rising, falling):
    assert should_stop(rising, mode) is not None
    assert should_stop(falling, mode) is None


def test_robust_mean_differs_from_mean_on_outliers():
    history = [10.0, 0.5, 0.6, 0.1, 0.56]
    assert should_stop(history, "mean") is None  # the outlier pulls the mean to 2.8
    assert should_stop(history, "robust_mean") is not None


def test_generalisation_loss_as_niftynet():
    assert generalisation_loss([1.0, 0.5, 0.75]) == pytest.approx(0.5)
    assert generalisation_loss([0.0, 0.5, 0.25]) == pytest.approx(0.25)  # min 0: the last value
    assert generalisation_loss([0.5, 0.5]) == 0.0  # flat: NiftyNet divided by zero


def test_median_smoothing_stops_when_the_smoothed_loss_mostly_rises():
    assert should_stop([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "median_smoothing") is not None
    assert should_stop([0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], "median_smoothing") is None
    assert should_stop([0.5, 0.51, 0.5, 0.51, 0.5, 0.51, 0.5], "median_smoothing") is None


def test_validation_up_needs_a_rise_in_every_strip():
    # patience 12: 2 values dropped, 5 strips of 2
    rising = [9, 9, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6]
    assert should_stop(rising, "validation_up") is not None
    one_strip_falls = rising[:-1] + [0.45]
    assert should_stop(one_strip_falls, "validation_up") is None


def test_stopper_waits_for_patience_values_and_explains():
    stopper = EarlyStopper("mean", 3)
    assert stopper.update(1.0) is None and stopper.update(0.5) is None
    reason = stopper.update(0.9)
    assert "0.9000 is above the mean 0.7500 of the previous 2 validations" in reason
    assert "early_stopping_mode mean, patience 3" in reason
    assert list(stopper.history) == [1.0, 0.5, 0.9]
    stopper.update(0.1)  # the window slides
    assert list(stopper.history) == [0.5, 0.9, 0.1]


def test_resumed_history_counts():
    stopper = EarlyStopper("median", 3, history=[0.3, 0.4])
    assert stopper.update(0.5) is not None


@pytest.mark.parametrize("mode, patience", [("validation_up", 4), ("median_smoothing", 2),
                                             ("mean", 1)])
def test_patience_too_short_for_the_mode(mode, patience):
    with pytest.raises(ConfigError, match=rf"\[training\] patience: .*{mode} needs"):
        EarlyStopper(mode, patience)
