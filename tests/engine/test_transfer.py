import keras
import pytest

from niftykit.engine.transfer import count, match_variables, split_frozen
from niftykit.errors import ConfigError


def _model():
    inputs = keras.Input((4,))
    hidden = keras.layers.BatchNormalization(name="norm")(keras.layers.Dense(3, name="encoder")(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(hidden))


def test_match_searches_the_variable_paths():
    model = _model()
    assert [v.path for v in match_variables(model.variables, "^encoder/", "vars_to_restore")] == [
        "encoder/kernel", "encoder/bias"]
    assert len(match_variables(model.variables, "kernel$", "vars_to_restore")) == 2


def test_a_pattern_that_matches_nothing_names_the_key():
    with pytest.raises(ConfigError, match=r"\[training\] vars_to_restore: 'decoder' matches none "
                                          r"of the network's variables \(encoder/kernel, "):
        match_variables(_model().variables, "decoder", "vars_to_restore")
    with pytest.raises(ConfigError, match=r"\[training\] vars_to_freeze: '\(' is not a regular"):
        match_variables(_model().variables, "(", "vars_to_freeze")


def test_freezing_splits_the_trainable_variables():
    model = _model()
    updated, frozen = split_frozen(model, "encoder|norm")
    assert [v.path for v in frozen] == ["encoder/kernel", "encoder/bias", "norm/gamma", "norm/beta"]
    assert [v.path for v in updated] == ["head/kernel", "head/bias"]
    assert count(frozen) == 4 * 3 + 3 + 3 + 3
    assert split_frozen(model, "") == (list(model.trainable_variables), [])
    with pytest.raises(ConfigError, match="moving_mean.*|matches none"):
        split_frozen(model, "moving_mean")  # not trainable: nothing to freeze
    with pytest.raises(ConfigError, match="freezes every trainable variable"):
        split_frozen(model, ".")
