"""Write a config as YAML: plain values, block mappings, flow-style lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from niftykit.config.schema import FIXED_SECTIONS, Config
from niftykit.config.spec import field_specs

__all__ = ["plain", "section_to_dict", "config_to_dict", "dump_yaml", "config_to_yaml"]


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, flow-style lists (``spatial_window_size: [64, 64, 64]``)."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data,
                                                         flow_style=True))


def plain(value: Any) -> Any:
    """Return ``value`` as YAML-safe built-ins: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return value


def section_to_dict(section: Any) -> dict[str, Any]:
    """Return every key of a section dataclass as plain values, in declaration order."""
    return {key: plain(getattr(section, key)) for key in field_specs(type(section))}


def config_to_dict(config: Config) -> dict[str, Any]:
    """Return the whole config as plain nested dicts in niftykit's YAML layout."""
    data: dict[str, Any] = {"application": config.application}
    data["inputs"] = {name: section_to_dict(section) for name, section in config.inputs.items()}
    for name in FIXED_SECTIONS:
        data[name] = section_to_dict(getattr(config, name))
    data[config.task_section] = section_to_dict(config.task)
    return data


def dump_yaml(data: dict[str, Any]) -> str:
    """Return ``data`` as YAML text in niftykit's style."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)


def config_to_yaml(config: Config) -> str:
    """Return the fully resolved config as YAML.

    Every default is filled in and every path is an absolute string, so the
    text re-loads to an equal config from any folder.

    Args:
        config: A loaded config.

    Returns:
        YAML text.
    """
    return dump_yaml(config_to_dict(config))
