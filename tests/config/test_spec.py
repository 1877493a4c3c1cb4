from dataclasses import dataclass

from niftykit.config.sections import NetworkConfig, SystemConfig, TrainingConfig
from niftykit.config.spec import field_specs, option
from niftykit.config.values import Int, Mapping


def test_field_specs_carry_default_kind_and_support():
    specs = field_specs(TrainingConfig)
    assert specs["lr"].default == 0.01 and specs["lr"].support is True
    assert specs["rotation_angle"].support is True
    assert specs["spatial_rank"].support is False
    assert field_specs(SystemConfig)["num_gpus"].support is True
    assert field_specs(NetworkConfig)["window_sampling"].support == (
        "uniform", "weighted", "balanced", "resize", "multiview", "multiscale")


def test_option_copies_mutable_defaults():
    @dataclass
    class Section:
        params: dict = option({}, Mapping(), True)
        n: int = option(1, Int())

    first, second = Section(), Section()
    first.params["a"] = 1
    assert second.params == {}
    assert list(field_specs(Section)) == ["params", "n"]
