"""Command-line overrides: ``section.key=value``, ``inputs.NAME.key=value``, ``key=value``,
and one entry of a mapping-valued key: ``network.params.weights_file=...`` (the rest of
``params`` is kept).

A bare key (NiftyNet's ``--lr 0.001``) is looked up in the system sections
and the active application section. Values are read as YAML scalars or lists
(``0.001``, ``[32, 32, 32]``, ``true``) or INI-style (``(1, 2, 3)``, ``1,2,3``);
text-valued keys (names, paths) take the text verbatim.
"""

from __future__ import annotations

from typing import Any, Sequence

import yaml

from niftykit.config.build import resolve_application, unknown_key_message
from niftykit.config.ini import clean_value
from niftykit.config.location import config_error, override_origin
from niftykit.config.raw import RawConfig, RawSection, RawValue
from niftykit.config.schema import APP_SECTIONS, FIXED_SECTIONS, INPUTS, InputConfig
from niftykit.config.spec import FieldSpec, field_specs
from niftykit.config.suggest import closest, did_you_mean
from niftykit.config.values import Mapping
from niftykit.errors import ConfigError

__all__ = ["apply_overrides", "parse_value"]


def parse_value(text: str, spec: FieldSpec) -> Any:
    """Turn an override's text into a raw value for ``spec``'s kind.

    Args:
        text: The part after ``=``.
        spec: The target key's spec.
    """
    text = clean_value(text)
    if spec.kind.textual or text.startswith("("):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _bare_section(raw: RawConfig, key: str, task: str, origin: str) -> str:
    candidates = [*FIXED_SECTIONS, task]
    homes = [name for name in candidates if key in field_specs(_section_class(name))]
    if homes:
        return homes[0]  # no key is shared among these sections
    if key in field_specs(InputConfig):
        raise config_error(origin, None, key, f"this key is set per input section; use "
                           f"inputs.NAME.{key}=... (inputs: {', '.join(raw.inputs) or 'none'})")
    keys = {k: name for name in candidates for k in field_specs(_section_class(name))}
    match = closest(key, keys)
    hint = f"; did you mean '{match}' (in [{keys[match]}])?" if match else ""
    raise config_error(origin, None, key, "unknown key" + hint)


def _section_class(name: str) -> type:
    return {**FIXED_SECTIONS, **APP_SECTIONS}[name]


def _target(raw: RawConfig, path: list[str], task: str, origin: str) -> tuple[str, bool, str]:
    """Return (section name, is_input, key) of an override's dotted path."""
    if path[0] == INPUTS:
        if len(path) < 3:
            raise config_error(origin, None, None, "expected inputs.NAME.key=value")
        name, key = ".".join(path[1:-1]), path[-1]
        if name not in raw.inputs:
            defined = list(raw.inputs)
            raise config_error(origin, f"inputs.{name}", None, f"input section '{name}' is not "
                               f"defined (inputs: {', '.join(defined) or 'none'})"
                               + did_you_mean(name, defined, max_distance=0))
        return name, True, key
    if len(path) == 1:
        return _bare_section(raw, path[0], task, origin), False, path[0]
    if len(path) > 2 and path[0].lower() in {**FIXED_SECTIONS, **APP_SECTIONS}:
        spec = field_specs(_section_class(path[0].lower())).get(path[1])
        if spec is not None and isinstance(spec.kind, Mapping):  # network.params.NAME=...
            return _target(raw, path[:2], task, origin)
    if len(path) != 2:
        raise config_error(origin, None, None, "expected section.key=value, "
                           "inputs.NAME.key=value or key=value")
    section, key = path[0].lower(), path[1]
    if section not in FIXED_SECTIONS and section not in APP_SECTIONS:
        sections = [*FIXED_SECTIONS, *APP_SECTIONS, INPUTS]
        raise config_error(origin, section, None, "unknown section" + did_you_mean(section,
                                                                                   sections))
    if section in APP_SECTIONS and section != task:
        raise config_error(origin, section, None, f"not the application section of this config "
                           f"(it uses [{task}])")
    return section, False, key


def _apply_one(raw: RawConfig, override: str, task: str) -> None:
    origin = override_origin(override)
    dotted, equals, text = override.partition("=")
    path = [part.strip() for part in dotted.strip().split(".")]
    if not equals or not all(path):
        raise config_error(origin, None, None, "expected section.key=value, e.g. training.lr=0.001")
    name, is_input, key = _target(raw, path, task, origin)
    specs = field_specs(InputConfig if is_input else _section_class(name))
    label = f"inputs.{name}" if is_input else name
    if key not in specs:
        what = unknown_key_message(raw, key, INPUTS if is_input else name, task)
        raise config_error(origin, label, key, what)
    sections = raw.inputs if is_input else raw.sections
    section = sections.setdefault(name, RawSection(raw.style_label(name, is_input)))
    entry = path[2:] if not is_input and isinstance(specs[key].kind, Mapping) else []
    if entry:  # one entry of a mapping: merged into what the file gave
        old = section.values.get(key)
        try:
            mapping = Mapping().coerce(old.value if old is not None else None)
        except Exception:  # a malformed file value is reported when the config is built
            mapping = {}
        target = mapping
        for part in entry[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[entry[-1]] = _scalar(text)
        section.values[key] = RawValue(mapping, origin)
        return
    section.values[key] = RawValue(parse_value(text, specs[key]), origin)


def _scalar(text: str) -> Any:
    """A mapping entry's value: YAML (numbers, lists, booleans) or the text itself."""
    text = clean_value(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: RawConfig, overrides: Sequence[str]) -> None:
    """Apply command-line overrides to a raw config, in order.

    Args:
        raw: The config as read from its file; changed in place.
        overrides: Strings such as ``training.lr=0.001``,
            ``inputs.ct.spatial_window_size=[32,32,32]`` or ``lr=0.001``.

    Raises:
        ConfigError: For a malformed override, an unknown section or key
            (with the nearest valid one), naming ``command line (<override>)``.
            Bad values are reported when the config is built.
    """
    if not overrides:
        return
    _, task = resolve_application(raw)
    for override in overrides:
        if not isinstance(override, str):
            raise ConfigError(f"command line: expected key=value text, got {override!r}")
        _apply_one(raw, override, task)
