"""Names become objects in one place.

A :class:`Registry` maps the names users write in configs (``unet``, ``Dice``,
``segmentation``) to classes or functions. Entries may be registered lazily as
``"package.module:attribute"`` strings so that looking up a name imports only
what it needs (TensorFlow stays unimported until a network is built). Any
``package.module:attribute`` (or ``package.module.attribute``) that is not a
registered name is imported as given, so users can plug in their own code.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import Any, Callable, Dict, Iterable, Union

from niftykit.errors import ConfigError, NotSupportedError

__all__ = ["Registry", "import_object"]

Entry = Union[str, Any]


def _import_module(name: str) -> Any:
    """Import ``name``; if its top-level package is not found, look in the current folder
    too, as ``python -m`` would (the ``niftykit`` script does not put it on ``sys.path``)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != name.split(".")[0] or cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(name)


def import_object(path: str, kind: str = "object") -> Any:
    """Import ``package.module:attribute`` or ``package.module.attribute``.

    Raises:
        ConfigError: the module or the attribute cannot be found.
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{kind} '{path}': expected 'package.module:Name'")
    try:
        module = _import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{kind} '{path}': cannot import module '{module_name}' ({exc}; "
                          "modules are looked up on PYTHONPATH and in the current folder)") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{kind} '{path}': module '{module_name}' has no '{attr}'") from None


class Registry:
    """Case-insensitive name → object table for one kind of thing.

    Args:
        kind: what the entries are, for messages (``"network"``, ``"loss"``).
        planned: names that users may know (e.g. from NiftyNet) but niftykit
            does not implement yet; looking one up is a ``NotSupportedError``.
    """

    def __init__(self, kind: str, planned: Iterable[str] = ()) -> None:
        self.kind = kind
        self._entries: Dict[str, Entry] = {}
        self._names: Dict[str, str] = {}
        self._planned = {name.lower(): name for name in planned}

    def register(self, name: str, entry: Entry) -> None:
        """Add ``entry`` (an object or a ``"module:attr"`` string) under ``name``."""
        key = name.lower()
        if key in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[key] = entry
        self._names[key] = name

    def decorator(self, name: str) -> Callable[[Any], Any]:
        """Class/function decorator form of :meth:`register`."""
        def wrap(obj: Any) -> Any:
            self.register(name, obj)
            return obj
        return wrap

    def names(self) -> list:
        """Registered names, as registered."""
        return sorted(self._names.values())

    def get(self, name_or_object: Any) -> Any:
        """Return the object registered as ``name``, or import a dotted path.

        Non-string arguments are returned unchanged.

        Raises:
            ConfigError: unknown name (with the close matches).
            NotSupportedError: a known NiftyNet name that niftykit lacks.
        """
        if not isinstance(name_or_object, str):
            return name_or_object
        key = name_or_object.lower()
        if key in self._entries:
            entry = self._entries[key]
            if isinstance(entry, str):
                entry = import_object(entry, self.kind)
                self._entries[key] = entry
            return entry
        if key in self._planned:
            raise NotSupportedError(
                f"{self.kind} '{name_or_object}' is not supported yet in niftykit "
                f"(available: {', '.join(self.names())})")
        if ":" in name_or_object or "." in name_or_object:
            return import_object(name_or_object, self.kind)
        close = difflib.get_close_matches(key, list(self._names), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(self._names[c]) for c in close)}?" if close else ""
        raise ConfigError(f"unknown {self.kind} '{name_or_object}'{hint} "
                          f"(available: {', '.join(self.names())})")
