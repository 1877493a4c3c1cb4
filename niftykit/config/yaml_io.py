"""Read a niftykit YAML config into a :class:`RawConfig`.

Layout: ``application:``, ``inputs:`` (a mapping of input sections) and one
mapping per lower-cased NiftyNet section (``system:``, ``network:`` …,
``segmentation:``). Duplicate keys are errors, not silently overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from niftykit.config.raw import YAML, RawConfig, RawSection, RawValue
from niftykit.config.schema import APP_SECTIONS, FIXED_SECTIONS, INPUTS, sections_with_key
from niftykit.config.suggest import did_you_mean
from niftykit.config.values import show

__all__ = ["read_yaml", "TOP_LEVEL"]

#: The keys allowed at the top of a YAML config.
TOP_LEVEL = ("application", INPUTS, *FIXED_SECTIONS, *APP_SECTIONS)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {show(key)} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse(text: str, raw: RawConfig) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise raw.file_error(f"{where}YAML syntax error: {error.problem}") from None
    except yaml.YAMLError as error:
        raise raw.file_error(f"YAML syntax error: {error}") from None


def _section(raw: RawConfig, label: str, body: Any, origin: str) -> RawSection:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise raw.file_error(f"[{label}]: expected a mapping of keys to values, got {show(body)}")
    values = {str(key): RawValue(value, origin) for key, value in body.items()}
    return RawSection(label, values)


def _unknown_top_level(key: str) -> str:
    homes = sections_with_key(key)
    if homes:
        where = " or ".join("an input section under inputs:" if name == INPUTS else f"[{name}]"
                            for name in homes)
        return f"{key}: not a section; it belongs in {where}"
    hint = did_you_mean(key, TOP_LEVEL)
    return f"[{key}]: unknown section" + (hint or f"; expected one of {', '.join(TOP_LEVEL)}")


def read_yaml(path: Path, origin: str) -> RawConfig:
    """Read a YAML config file.

    Args:
        path: The absolute path of an existing file.
        origin: The file as shown in messages.

    Returns:
        The raw config, values as YAML parsed them.

    Raises:
        ConfigError: For syntax errors (with line), an empty file, unknown
            top-level keys or sections that are not mappings.
    """
    raw = RawConfig(path=path, origin=origin, style=YAML)
    data = _parse(path.read_text(encoding="utf-8"), raw)
    if data is None:
        raise raw.file_error("empty config file; expected a mapping with application:, inputs: "
                             "and sections such as training:")
    if not isinstance(data, dict):
        raise raw.file_error(f"expected a mapping (application:, inputs:, training: ...) at the "
                             f"top level, got {show(data)}")
    for key, body in data.items():
        key = str(key)
        if key == "application":
            raw.application = RawValue(body, origin)
        elif key == INPUTS:
            raw.inputs = _inputs(raw, body, origin)
        elif key in FIXED_SECTIONS or key in APP_SECTIONS:
            raw.sections[key] = _section(raw, key, body, origin)
        else:
            raise raw.file_error(_unknown_top_level(key))
    return raw


def _inputs(raw: RawConfig, body: Any, origin: str) -> dict[str, RawSection]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise raw.file_error(f"[inputs]: expected a mapping of input names to sections, "
                             f"e.g. inputs: {{ct: {{path_to_search: data}}}}, got {show(body)}")
    return {str(name): _section(raw, f"inputs.{name}", section, origin)
            for name, section in body.items()}
