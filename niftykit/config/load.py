"""Load a config file (YAML or NiftyNet INI) with command-line overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from niftykit.config.build import build_config
from niftykit.config.ini import read_ini
from niftykit.config.location import config_error, display_path
from niftykit.config.overrides import apply_overrides
from niftykit.config.raw import RawConfig
from niftykit.config.schema import Config
from niftykit.config.yaml_io import read_yaml

__all__ = ["load_config", "read_raw"]

YAML_SUFFIXES = (".yaml", ".yml")
INI_SUFFIXES = (".ini",)


def read_raw(path: str | os.PathLike[str]) -> tuple[RawConfig, list[str]]:
    """Read a config file without building it.

    Args:
        path: A ``.yaml``/``.yml`` or NiftyNet ``.ini`` file.

    Returns:
        The raw config and, for INI files, the keys ignored as misplaced.

    Raises:
        ConfigError: If the file is missing, of an unknown type, or unreadable.
    """
    origin = display_path(path)
    absolute = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if not absolute.is_file():
        what = "is a folder, not a config file" if absolute.is_dir() else "no such config file"
        raise config_error(origin, None, None, what)
    suffix = absolute.suffix.lower()
    try:
        if suffix in YAML_SUFFIXES:
            return read_yaml(absolute, origin), []
        if suffix in INI_SUFFIXES:
            return read_ini(absolute, origin)
    except (OSError, UnicodeDecodeError) as error:
        raise config_error(origin, None, None, f"cannot read the file: {error}") from None
    raise config_error(origin, None, None, f"unknown config file type {suffix or '(none)'!r}; "
                       f"expected .yaml, .yml or a NiftyNet .ini")


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Load a niftykit YAML or NiftyNet INI config.

    Args:
        path: The config file (``.yaml``, ``.yml`` or ``.ini``). Relative paths
            inside it resolve against its folder (see :mod:`niftykit.config.paths`).
        overrides: Command-line overrides, each ``section.key=value``,
            ``inputs.NAME.key=value`` or a bare ``key=value`` (NiftyNet's
            ``--lr 0.001`` arrives as ``lr=0.001``).

    Returns:
        The typed config, every default filled in, ``source`` set to the file.

    Raises:
        ConfigError: For the first problem, in one line naming the file (or
            the command line), the section and the key.
    """
    raw, _ = read_raw(path)
    apply_overrides(raw, overrides)
    config = build_config(raw)
    config.source = raw.path
    return config
