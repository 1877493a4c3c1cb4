"""Build a typed :class:`Config` from a :class:`RawConfig`.

Every key is coerced by its kind; unknown keys, keys in the wrong section,
wrong types and out-of-range values raise :class:`ConfigError` naming the
file, the section and the key. Paths are resolved to absolute paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from niftykit.config.apps import normalise_application
from niftykit.config.checks import check_config
from niftykit.config.paths import CONFIG_DIR, MODEL_DIR, PathList, PathValue, resolve
from niftykit.config.raw import INI, RawConfig
from niftykit.config.schema import (APP_SECTIONS, FIXED_SECTIONS, INPUTS, Config, InputConfig,
                                    sections_with_key)
from niftykit.config.sequences import InputRefs
from niftykit.config.spec import field_specs
from niftykit.config.suggest import did_you_mean
from niftykit.config.values import Invalid
from niftykit.errors import ConfigError

__all__ = ["build_config", "resolve_application", "misplaced_message", "unknown_key_message"]


def resolve_application(raw: RawConfig) -> tuple[str, str]:
    """Return the application name and the name of its section.

    Without an ``application`` value the one application section present
    decides (segmentation if there is none). A dotted user application uses
    whichever application section is present.

    Raises:
        ConfigError: For an unknown application, or application sections that
            do not match it.
    """
    present = [name for name in APP_SECTIONS if name in raw.sections]
    labels = ", ".join(f"[{raw.section_label(name)}]" for name in present)
    if len(present) > 1:
        raise raw.file_error(f"{labels}: more than one application section; keep only the one "
                             f"for your application")
    if raw.application is None:
        application = present[0] if present else "segmentation"
    else:
        try:
            application = normalise_application(raw.application.value)
        except Invalid as error:
            raise ConfigError(f"{raw.application.origin}: application: {error}") from None
    task = application if application in APP_SECTIONS else (present or ["segmentation"])[0]
    if present and present[0] != task:
        raise raw.error(present[0], None, f"this section is for application '{present[0]}', but "
                        f"application is '{application}'; rename it [{raw.style_label(task)}] "
                        f"or set application: {present[0]}")
    return application, task


def _home(raw: RawConfig, section: str) -> str:
    if section == INPUTS:
        return "an input section" if raw.style == INI else "an input section under inputs:"
    return f"[{raw.style_label(section)}]"


def misplaced_message(raw: RawConfig, key: str, current: str, task: str) -> str | None:
    """Return ``"this key belongs in [network]"`` if ``key`` lives in another section.

    Args:
        raw: The config (for the naming style).
        key: The key found in the wrong place.
        current: The section it was found in (``inputs`` for an input section).
        task: The active application section, preferred among application sections.
    """
    homes = [name for name in sections_with_key(key) if name != current]
    if task in homes:
        homes = [name for name in homes if name not in APP_SECTIONS or name == task]
    if not homes:
        return None
    return "this key belongs in " + " or ".join(_home(raw, name) for name in homes)


def unknown_key_message(raw: RawConfig, key: str, current: str, task: str) -> str:
    """Explain an unknown key: where it belongs, or the nearest valid key."""
    misplaced = misplaced_message(raw, key, current, task)
    if misplaced:
        return misplaced
    cls = InputConfig if current == INPUTS else {**FIXED_SECTIONS, **APP_SECTIONS}[current]
    keys = list(field_specs(cls))
    hint = did_you_mean(key, keys)
    return "unknown key" + (hint or f"; valid keys: {', '.join(keys)}")


def _coerce_section(raw: RawConfig, name: str, cls: type, task: str,
                    is_input: bool = False) -> dict[str, Any]:
    section = (raw.inputs if is_input else raw.sections).get(name)
    specs = field_specs(cls)
    values: dict[str, Any] = {}
    for key, item in (section.values.items() if section else ()):
        if key not in specs:
            what = unknown_key_message(raw, key, INPUTS if is_input else name, task)
            raise raw.error(name, key, what, is_input)
        try:
            values[key] = specs[key].kind.coerce(item.value)
        except Invalid as error:
            raise raw.error(name, key, str(error), is_input) from None
    for key, spec in specs.items():
        if spec.required and values.get(key, spec.default) == spec.default:
            what = f"required: {spec.required}"
            if isinstance(spec.kind, InputRefs):
                what += f" (inputs: {', '.join(raw.inputs) or 'none defined'})"
            raise raw.error(name, key, what, is_input)
    return values


def _resolve_paths(sections: list[Any], base: str, base_dir: Path) -> None:
    for section in sections:
        for key, spec in field_specs(type(section)).items():
            value = getattr(section, key)
            if isinstance(spec.kind, PathValue) and spec.kind.base == base and value is not None:
                setattr(section, key, resolve(value, base_dir))
            elif isinstance(spec.kind, PathList) and spec.kind.base == base:
                setattr(section, key, tuple(resolve(path, base_dir) for path in value))


def _resolve_param_files(params: dict, base_dir: Path) -> None:
    """Network parameters named ``*_file`` (``keras_backbone``'s ``weights_file``) are paths:
    a relative one resolves against the config file's folder, like the config's own paths,
    not against the folder the command runs in."""
    for key, value in params.items():
        if key.endswith("_file") and isinstance(value, str) and value:
            params[key] = str(resolve(Path(value), base_dir))
        elif isinstance(value, dict):
            _resolve_param_files(value, base_dir)


def build_config(raw: RawConfig) -> Config:
    """Build and check the typed config.

    Args:
        raw: The config as read from a file, overrides applied.

    Returns:
        A :class:`Config` with every default filled in and paths absolute.

    Raises:
        ConfigError: For the first problem found, naming file, section and key.
    """
    application, task = resolve_application(raw)
    inputs = {name: InputConfig(**_coerce_section(raw, name, InputConfig, task, True))
              for name in raw.inputs}
    fixed = {name: cls(**_coerce_section(raw, name, cls, task))
             for name, cls in FIXED_SECTIONS.items()}
    task_config = APP_SECTIONS[task](**_coerce_section(raw, task, APP_SECTIONS[task], task))
    config = Config(application=application, inputs=inputs, **fixed, **{task: task_config},
                    source=raw.path)
    sections = [*inputs.values(), *fixed.values(), task_config]
    config_dir = raw.path.parent
    _resolve_paths(sections, CONFIG_DIR, config_dir)
    _resolve_param_files(config.network.params, config_dir)
    if config.system.model_dir is None:
        config.system.model_dir = config_dir / "model"
    _resolve_paths(sections, MODEL_DIR, config.system.model_dir)
    check_config(config, raw, task)
    return config
