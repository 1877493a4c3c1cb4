"""Scalar value kinds: coercion and range checks for one config value.

A *kind* turns a raw value (an INI string, a YAML scalar, or a command-line
string) into its typed form, or raises :class:`Invalid` with a message that
says what would be right (the caller adds file, section and key).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Sequence

import yaml

from niftykit.config.suggest import did_you_mean

__all__ = ["Invalid", "Kind", "Bounds", "Int", "IntOrName", "Float", "Bool", "Str", "Choice",
           "Name", "Mapping", "show", "to_int", "to_float"]

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class Invalid(ValueError):
    """A value that does not fit its field; the message says what would."""


def show(value: object) -> str:
    """Render a raw value for a message: strings quoted, None as ``null``."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class Kind:
    """Base of all value kinds.

    Attributes:
        textual: If True, a command-line override's text is taken verbatim
            rather than parsed as a YAML scalar.
    """

    textual = False

    def coerce(self, value: object) -> Any:
        """Return the typed value or raise :class:`Invalid`."""
        raise NotImplementedError


@dataclass(frozen=True)
class Bounds:
    """An allowed numeric range, plus isolated allowed values (e.g. -1 = off)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    also: tuple[float, ...] = ()
    note: str = ""

    def rule(self) -> str:
        """Describe the range, e.g. ``'-1 or >= 1'``."""
        if self.ge is not None and self.le is not None:
            parts = [f"between {self.ge} and {self.le}"]
        else:
            parts = [f"{op} {bound}" for op, bound in
                     ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                     if bound is not None]
        text = " and ".join(parts)
        if self.also:
            text = " or ".join([", ".join(str(a) for a in self.also), text])
        return text + self.note

    def check(self, number: float) -> None:
        """Raise :class:`Invalid` if ``number`` is out of range."""
        if number in self.also:
            return
        ok = ((self.gt is None or number > self.gt) and (self.ge is None or number >= self.ge)
              and (self.lt is None or number < self.lt) and (self.le is None or number <= self.le))
        if not ok:
            raise Invalid(f"must be {self.rule()}, got {number}")


def to_int(value: object) -> int:
    """Convert an int, an integral float or a numeric string to int."""
    if isinstance(value, bool):
        raise Invalid(f"expected an integer, got {show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise Invalid(f"expected an integer, got {show(value)}")


def to_float(value: object) -> float:
    """Convert an int, float or numeric string to float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise Invalid(f"expected a number, got {show(value)}")


class Int(Kind):
    """An integer, optionally bounded: ``Int(ge=1)``, ``Int(ge=1, also=(-1,))``."""

    def __init__(self, **bounds: Any) -> None:
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> int:
        number = to_int(value)
        self.bounds.check(number)
        return number


class IntOrName(Kind):
    """An integer (bounded as :class:`Int`) or one of a few names, matched
    case-insensitively: ``IntOrName(("best",), ge=-1)`` takes -1, 0, 300 or ``best``."""

    def __init__(self, names: Sequence[str], **bounds: Any) -> None:
        self.names = tuple(names)
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> int | str:
        if isinstance(value, str):
            for name in self.names:
                if name.lower() == value.strip().lower():
                    return name
        try:
            number = to_int(value)
        except Invalid:
            hint = did_you_mean(str(value), self.names) if isinstance(value, str) else ""
            raise Invalid(f"expected an integer {self.bounds.rule()}, or "
                          f"{' or '.join(self.names)}, got {show(value)}{hint}") from None
        self.bounds.check(number)
        return number


class Float(Kind):
    """A real number, optionally bounded and optionally unset (None)."""

    def __init__(self, optional: bool = False, **bounds: Any) -> None:
        self.optional = optional
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> float | None:
        if self.optional and (value is None or value == ""):
            return None
        number = to_float(value)
        self.bounds.check(number)
        return number


class Bool(Kind):
    """A boolean: true/false, yes/no, on/off, 1/0 (any case)."""

    def coerce(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise Invalid(f"expected true or false, got {show(value)}")


class Str(Kind):
    """Free text; numbers are accepted as their text. Optional: empty → None."""

    textual = True

    def __init__(self, optional: bool = False) -> None:
        self.optional = optional

    def coerce(self, value: object) -> str | None:
        if self.optional and (value is None or value == ""):
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise Invalid(f"expected text, got {show(value)}")


class Choice(Kind):
    """One of a fixed set of names, matched case-insensitively."""

    textual = True

    def __init__(self, options: Sequence[str], optional: bool = False) -> None:
        self.options = tuple(options)
        self.optional = optional

    def coerce(self, value: object) -> str | None:
        if self.optional and (value is None or value == ""):
            return None
        if isinstance(value, str):
            for option in self.options:
                if option.lower() == value.strip().lower():
                    return option
        raise Invalid(f"expected {self.expected()}, got {show(value)}"
                      + did_you_mean(str(value), self.options))

    def expected(self) -> str:
        """Describe the accepted values."""
        return f"one of {', '.join(self.options)}"


class Name(Choice):
    """A registered name, or a dotted path ``package.module:Name`` to user code."""

    def coerce(self, value: object) -> str | None:
        if isinstance(value, str) and _DOTTED.match(value.strip()):
            return value.strip()
        return super().coerce(value)

    def expected(self) -> str:
        return super().expected() + " or a dotted path package.module:Name"


class Mapping(Kind):
    """A mapping of names to values (YAML text is accepted in INI files)."""

    def coerce(self, value: object) -> dict[str, Any]:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise Invalid(f"expected a mapping such as {{key: value}}, got {show(value)}") \
                    from None
            if value is None:
                return {}
        if not isinstance(value, dict):
            raise Invalid(f"expected a mapping such as {{key: value}}, got {show(value)}")
        return {str(key): copy.deepcopy(item) for key, item in value.items()}
