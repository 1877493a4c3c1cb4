"""Convert a NiftyNet INI config into the equivalent niftykit YAML."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from niftykit.config.build import build_config
from niftykit.config.dump import dump_yaml, plain
from niftykit.config.location import config_error
from niftykit.config.load import read_raw
from niftykit.config.paths import CONFIG_DIR, PathList, PathValue, rebase
from niftykit.config.raw import INI, RawSection
from niftykit.config.schema import APP_SECTIONS, FIXED_SECTIONS, InputConfig
from niftykit.config.spec import field_specs

__all__ = ["convert_ini"]


def _value(spec: Any, raw_value: object, ini_dir: Path, out_dir: Path) -> Any:
    typed = spec.kind.coerce(raw_value)
    config_relative = getattr(spec.kind, "base", None) == CONFIG_DIR
    if isinstance(spec.kind, PathValue) and config_relative and typed is not None:
        return rebase(str(typed), ini_dir, out_dir)
    if isinstance(spec.kind, PathList) and config_relative:
        paths = [rebase(str(path), ini_dir, out_dir) for path in typed]
        return paths[0] if len(paths) == 1 else paths
    return plain(typed)


def _section(section: RawSection, cls: type, ini_dir: Path, out_dir: Path) -> dict[str, Any]:
    specs = field_specs(cls)
    return {key: _value(specs[key], item.value, ini_dir, out_dir)
            for key, item in section.values.items()}


def _header(source: str, ignored: list[str]) -> str:
    lines = [f"# niftykit config converted from the NiftyNet INI file {source}"]
    if ignored:
        lines.append("# Not converted: these keys sat in the wrong section of the INI, "
                     "and NiftyNet ignored them:")
        lines += [f"#   {line}" for line in ignored]
    return "\n".join(lines) + "\n"


def convert_ini(ini_path: str | os.PathLike[str],
                out_path: str | os.PathLike[str] | None = None) -> str:
    """Convert a NiftyNet INI file to niftykit YAML.

    The YAML holds ``application:`` and only the keys the INI sets, in
    niftykit's layout, so that ``load_config(<yaml at out_path>)`` equals
    ``load_config(ini_path)``. Paths relative to the config folder stay
    relative, rebased to ``out_path``'s folder when it differs (``model_dir``
    is then written even if the INI left it to its default).

    Args:
        ini_path: The NiftyNet INI file.
        out_path: Where the YAML will live (relative paths are rebased to its
            folder); writing it is the caller's job (the CLI writes atomically).

    Returns:
        The YAML text. Keys that NiftyNet ignored because they sat in the
        wrong section are listed in a leading comment.

    Raises:
        ConfigError: If the INI is invalid (the same errors as loading it).
    """
    raw, ignored = read_raw(ini_path)
    if raw.style != INI:
        raise config_error(raw.origin, None, None, "not a NiftyNet .ini file")
    config = build_config(raw)
    ini_dir = raw.path.parent
    out_dir = Path(os.path.abspath(os.fspath(out_path))).parent if out_path else ini_dir
    data: dict[str, Any] = {"application": config.application}
    inputs = {name: _section(section, InputConfig, ini_dir, out_dir)
              for name, section in raw.inputs.items()}
    if inputs:
        data["inputs"] = inputs
    classes = {**FIXED_SECTIONS, config.task_section: APP_SECTIONS[config.task_section]}
    for name, cls in classes.items():
        if raw.sections.get(name) is not None and raw.sections[name].values:
            data[name] = _section(raw.sections[name], cls, ini_dir, out_dir)
    system = data.setdefault("system", {})
    if system.get("model_dir") is None and out_dir != ini_dir:
        system["model_dir"] = rebase("model", ini_dir, out_dir)
    if not system:
        del data["system"]
    return _header(raw.origin, ignored) + dump_yaml(data)
