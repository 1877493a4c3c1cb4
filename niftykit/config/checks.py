"""Checks that span several keys: input references, input sources, data split."""

from __future__ import annotations

from typing import Any

from niftykit.config.raw import RawConfig
from niftykit.config.sequences import InputRefs
from niftykit.config.spec import field_specs
from niftykit.config.suggest import did_you_mean

__all__ = ["check_config"]


def _check_references(config: Any, raw: RawConfig, task: str) -> None:
    section = getattr(config, task)
    defined = list(config.inputs)
    for key, spec in field_specs(type(section)).items():
        if not isinstance(spec.kind, InputRefs):
            continue
        for name in getattr(section, key):
            if name not in config.inputs:
                what = (f"input section '{name}' is not defined "
                        f"(inputs: {', '.join(defined) or 'none'})"
                        + did_you_mean(name, defined, max_distance=0))
                raise raw.error(task, key, what)


def _check_sources(config: Any, raw: RawConfig) -> None:
    for name, section in config.inputs.items():
        if (not section.path_to_search and section.csv_file is None
                and getattr(section, "csv_data_file", None) is None):
            raise raw.error(name, "path_to_search", "required: a folder of images (or set "
                            "csv_file to a subject_id,path list, or csv_data_file to "
                            "subject_id,value rows)", is_input=True)


def _check_split(config: Any, raw: RawConfig) -> None:
    validation = config.training.exclude_fraction_for_validation
    inference = config.training.exclude_fraction_for_inference
    if validation + inference >= 1:
        raise raw.error("training", "exclude_fraction_for_inference",
                        f"exclude_fraction_for_validation + exclude_fraction_for_inference must "
                        f"be < 1 (something must be left for training), got {validation} + "
                        f"{inference}")


def check_config(config: Any, raw: RawConfig, task: str) -> None:
    """Raise :class:`~niftykit.errors.ConfigError` for the first cross-key problem.

    Args:
        config: The built :class:`~niftykit.config.Config`.
        raw: The raw config, for locations in messages.
        task: The active application section name.
    """
    _check_references(config, raw, task)
    _check_sources(config, raw)
    _check_split(config, raw)
