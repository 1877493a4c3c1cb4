"""Path value kinds and how relative paths resolve.

As in NiftyNet, ``path_to_search``, ``csv_file`` and ``model_dir`` are relative
to the config file's folder, while ``dataset_split_file``,
``histogram_ref_file``, ``save_seg_dir`` and ``save_csv_dir`` are relative to
``model_dir``. An empty ``model_dir`` means ``<config folder>/model``.
"""

from __future__ import annotations

import os
from pathlib import Path

from niftykit.config.sequences import split_items
from niftykit.config.values import Invalid, Kind, show

__all__ = ["CONFIG_DIR", "MODEL_DIR", "PathValue", "PathList", "resolve", "rebase"]

CONFIG_DIR = "config"
MODEL_DIR = "model_dir"


def _as_path(value: object, original: object) -> Path:
    if isinstance(value, os.PathLike):
        return Path(value)
    if isinstance(value, str) and value.strip():
        return Path(value.strip())
    raise Invalid(f"expected a path, got {show(original)}")


class PathValue(Kind):
    """One file or folder path, relative to ``base`` (config folder or model_dir)."""

    textual = True

    def __init__(self, base: str, optional: bool = False) -> None:
        self.base = base
        self.optional = optional

    def coerce(self, value: object) -> Path | None:
        if self.optional and (value is None or value == ""):
            return None
        return _as_path(value, value)


class PathList(Kind):
    """One folder or a list of folders (INI: comma-separated)."""

    textual = True

    def __init__(self, base: str) -> None:
        self.base = base

    def coerce(self, value: object) -> tuple[Path, ...]:
        if isinstance(value, os.PathLike):
            return (Path(value),)
        return tuple(_as_path(item, value) for item in split_items(value))


def resolve(path: Path, base_dir: Path) -> Path:
    """Return ``path`` as an absolute, normalised path (``~`` expanded).

    Args:
        path: An absolute or relative path.
        base_dir: The absolute folder a relative path is relative to.
    """
    expanded = path.expanduser()
    return Path(os.path.normpath(expanded if expanded.is_absolute() else base_dir / expanded))


def rebase(text: str, old_dir: Path, new_dir: Path) -> str:
    """Rewrite a relative path so that it points to the same place from ``new_dir``.

    Absolute paths and ``~`` paths are returned unchanged.

    Args:
        text: The path as written, relative to ``old_dir``.
        old_dir: The absolute folder it was relative to.
        new_dir: The absolute folder it should be relative to.
    """
    if Path(text).is_absolute() or text.startswith("~") or old_dir == new_dir:
        return text
    return os.path.relpath(os.path.normpath(old_dir / text), new_dir)
