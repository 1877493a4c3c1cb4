import keras
import numpy as np
import pytest

from niftykit.engine.optimiser import make_optimiser
from niftykit.engine.schedule import LearningRate
from niftykit.errors import ConfigError


def test_clipping_decay_and_schedule_reach_the_keras_optimiser():
    optimiser = make_optimiser("momentum", LearningRate(0.1), clip_norm=2.0, weight_decay=0.01)
    assert isinstance(optimiser, keras.optimizers.SGD) and optimiser.momentum == 0.9
    assert optimiser.global_clipnorm == 2.0 and optimiser.weight_decay == 0.01
    plain = make_optimiser("adam", 0.1)
    assert plain.global_clipnorm is None and plain.weight_decay is None


def test_weight_decay_is_decoupled_from_the_gradient():
    variable = keras.Variable(np.ones(3, "float32"))
    optimiser = make_optimiser("sgd", 0.5, weight_decay=0.1)
    optimiser.apply_gradients([(np.zeros(3, "float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), 1 - 0.5 * 0.1)


def test_global_norm_clipping():
    variable = keras.Variable(np.zeros(2, "float32"))
    optimiser = make_optimiser("sgd", 1.0, clip_norm=1.0)
    optimiser.apply_gradients([(np.array([3.0, 4.0], "float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), [-0.6, -0.8], rtol=1e-6)


def test_mixed_float16_gets_loss_scaling_and_adamw_is_adam_with_decay():
    optimiser = make_optimiser("adamw", 0.1, weight_decay=0.05, precision="mixed_float16")
    assert isinstance(optimiser, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimiser.inner_optimizer, keras.optimizers.Adam)
    assert optimiser.inner_optimizer.weight_decay == 0.05
    assert not isinstance(make_optimiser("adam", 0.1, precision="mixed_bfloat16"),
                          keras.optimizers.LossScaleOptimizer)


def test_unknown_optimiser():
    with pytest.raises(ConfigError, match="unknown optimiser 'adamax'"):
        make_optimiser("adamax", 0.1)
