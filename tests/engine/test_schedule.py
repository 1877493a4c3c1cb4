import math

import pytest

from niftykit.engine.schedule import LearningRate
from niftykit.errors import ConfigError


def _at(schedule, step):
    return float(schedule(step))


def test_constant_is_lr_at_every_step():
    schedule = LearningRate(0.01)
    assert [_at(schedule, s) for s in (0, 10, 10_000)] == pytest.approx([0.01] * 3)


def test_step_multiplies_by_the_rate_every_decay_steps():
    schedule = LearningRate(0.1, "step", decay_steps=10, decay_rate=0.5)
    assert [_at(schedule, s) for s in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_cosine_reaches_lr_min_at_max_iter_and_stays():
    schedule = LearningRate(1.0, "cosine", max_iter=100, lr_min=0.1)
    assert _at(schedule, 0) == pytest.approx(1.0)
    assert _at(schedule, 50) == pytest.approx(0.55)
    assert _at(schedule, 100) == pytest.approx(0.1)
    assert _at(schedule, 500) == pytest.approx(0.1)


def test_polynomial_follows_the_power():
    schedule = LearningRate(1.0, "polynomial", max_iter=10, power=2.0)
    assert _at(schedule, 5) == pytest.approx(0.25)
    assert _at(schedule, 10) == pytest.approx(0.0)


def test_warmup_is_linear_then_the_schedule_starts():
    schedule = LearningRate(1.0, "cosine", max_iter=14, warmup_iters=4)
    assert [_at(schedule, s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # the decay runs over the 10 iterations after the warm-up
    assert _at(schedule, 4) == pytest.approx(1.0)
    assert _at(schedule, 9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert _at(schedule, 14) == pytest.approx(0.0, abs=1e-7)
    assert "4 warm-up" in schedule.describe()


def test_config_round_trip_and_errors():
    schedule = LearningRate(0.1, "step", decay_steps=7, decay_rate=0.3, warmup_iters=2)
    again = LearningRate.from_config(schedule.get_config())
    assert [_at(again, s) for s in (0, 5, 20)] == pytest.approx([_at(schedule, s) for s in (0, 5, 20)])
    with pytest.raises(ConfigError, match=r"\[training\] lr_min: 0.5 is above training.lr"):
        LearningRate(0.1, "cosine", lr_min=0.5)
    with pytest.raises(ConfigError, match="lr_schedule"):
        LearningRate(0.1, "exponential")
