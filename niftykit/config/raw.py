"""The untyped config tree that INI and YAML readers produce and overrides edit.

Each value remembers where it came from (file or command line) so that the
builder's messages name the right place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from niftykit.config.location import config_error, message
from niftykit.errors import ConfigError

__all__ = ["INI", "YAML", "RawValue", "RawSection", "RawConfig"]

INI = "ini"
YAML = "yaml"


@dataclass
class RawValue:
    """A value as written, with its origin label (file or ``command line (…)``)."""

    value: object
    origin: str


@dataclass
class RawSection:
    """One section as written.

    Attributes:
        label: The section as shown in messages (``TRAINING``, ``training``,
            ``T1``, ``inputs.T1``).
        values: Key → raw value, in file order.
    """

    label: str
    values: dict[str, RawValue] = field(default_factory=dict)


@dataclass
class RawConfig:
    """A whole config as written.

    Attributes:
        path: The absolute path of the config file.
        origin: The file as shown in messages.
        style: ``ini`` or ``yaml``; decides how sections are named in messages.
        application: The ``application`` value, if given.
        sections: System and application sections by lower-case name.
        inputs: Input sections by name.
    """

    path: Path
    origin: str
    style: str
    application: RawValue | None = None
    sections: dict[str, RawSection] = field(default_factory=dict)
    inputs: dict[str, RawSection] = field(default_factory=dict)

    def section_label(self, name: str, is_input: bool = False) -> str:
        """Return how section ``name`` is shown (as written if present)."""
        found = (self.inputs if is_input else self.sections).get(name)
        if found is not None:
            return found.label
        return self.style_label(name, is_input)

    def style_label(self, name: str, is_input: bool = False) -> str:
        """Return how a section not in the file would be written in this style."""
        if self.style == INI:
            return name if is_input else name.upper()
        return f"inputs.{name}" if is_input else name

    def where(self, name: str, key: str | None, what: str, is_input: bool = False) -> str:
        """Format a message about ``[name] key`` with the origin of that value."""
        found = (self.inputs if is_input else self.sections).get(name)
        origin = self.origin
        if found is not None and key in found.values:
            origin = found.values[key].origin
        return message(origin, self.section_label(name, is_input), key, what)

    def error(self, name: str, key: str | None, what: str, is_input: bool = False) -> ConfigError:
        """Return a :class:`ConfigError` for :meth:`where`'s message."""
        return ConfigError(self.where(name, key, what, is_input))

    def file_error(self, what: str) -> ConfigError:
        """Return a :class:`ConfigError` about the file as a whole."""
        return config_error(self.origin, None, None, what)
