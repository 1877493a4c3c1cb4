"""Sequence value kinds: name lists, integer lists, spatial triples, pairs, axcodes.

Accepted spellings: YAML lists, and the INI forms ``(a, b, c)``, ``a, b, c``
and ``a`` (one item); an empty string or ``()`` is the empty list.
"""

from __future__ import annotations

from typing import Any, Callable

from niftykit.config.values import Bounds, Invalid, Kind, show, to_float, to_int

__all__ = ["split_items", "StrList", "InputRefs", "IntList", "SpatialSize", "Triple",
           "FloatPair", "Axcodes"]

_AXES = ({"L", "R"}, {"A", "P"}, {"S", "I"})


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def split_items(value: object) -> list[Any]:
    """Return the items of a list-like value.

    Args:
        value: A list or tuple, an INI-style string ``"(a, b)"``/``"a, b"``,
            a scalar (one item) or None (no items).

    Returns:
        The items; strings are stripped of spaces and quotes, empties dropped.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    return [_strip_quotes(part) for part in text.split(",") if _strip_quotes(part)]


def _numbers(value: object, convert: Callable[[object], Any], what: str) -> list[Any]:
    try:
        return [convert(item) for item in split_items(value)]
    except Invalid:
        raise Invalid(f"expected {what}, got {show(value)}") from None


class StrList(Kind):
    """A list of names, e.g. ``filename_contains: [CT, _ct]``."""

    textual = True

    def coerce(self, value: object) -> tuple[str, ...]:
        items = split_items(value)
        if any(isinstance(item, (list, tuple, dict, bool)) or item is None for item in items):
            raise Invalid(f"expected a list of names, got {show(value)}")
        return tuple(str(item) for item in items)


class InputRefs(StrList):
    """A list of input section names (an application's input grouping)."""


class IntList(Kind):
    """A list of integers; ``off`` (e.g. -1) alone means the empty list."""

    def __init__(self, off: int | None = None, **bounds: Any) -> None:
        self.off = off
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> tuple[int, ...]:
        numbers = _numbers(value, to_int, "a list of integers")
        if self.off is not None and numbers == [self.off]:
            return ()
        for number in numbers:
            self.bounds.check(number)
        return tuple(numbers)


class SpatialSize(Kind):
    """A window size in voxels: 3 values, or 2 for a 2-D window (z = 1)."""

    def coerce(self, value: object) -> tuple[int, int, int] | None:
        sizes = _numbers(value, to_int, "2 or 3 integers")
        if not sizes:
            return None
        if len(sizes) not in (2, 3):
            note = " (NiftyNet read one value N as (N, 1, 1))" if len(sizes) == 1 else ""
            raise Invalid(f"give 2 or 3 values, e.g. [96, 96] for 2-D or [96, 96, 96] for 3-D, "
                          f"got {show(value)}{note}")
        if min(sizes) < 0:
            raise Invalid(f"sizes must be >= 0 (0 = whole image extent), got {show(value)}")
        return (sizes[0], sizes[1], sizes[2] if len(sizes) == 3 else 1)


class Triple(Kind):
    """Three numbers along (x, y, z); one value is repeated three times."""

    def __init__(self, number: type = int, optional: bool = False, **bounds: Any) -> None:
        self.convert = to_int if number is int else to_float
        self.what = "integers" if number is int else "numbers"
        self.optional = optional
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> tuple[Any, Any, Any] | None:
        numbers = _numbers(value, self.convert, f"1 or 3 {self.what}")
        if not numbers and self.optional:
            return None
        if len(numbers) == 1:
            numbers = numbers * 3
        if len(numbers) != 3:
            raise Invalid(f"give 1 value (used for x, y and z) or 3 values, got {show(value)}")
        for number in numbers:
            self.bounds.check(number)
        return (numbers[0], numbers[1], numbers[2])


class FloatPair(Kind):
    """A (min, max) pair of numbers, e.g. ``rotation_angle: [-10, 10]``."""

    def __init__(self, optional: bool = True, **bounds: Any) -> None:
        self.optional = optional
        self.bounds = Bounds(**bounds)

    def coerce(self, value: object) -> tuple[float, float] | None:
        numbers = _numbers(value, to_float, "2 numbers (min, max)")
        if not numbers and self.optional:
            return None
        if len(numbers) != 2:
            raise Invalid(f"expected 2 numbers (min, max), got {show(value)}")
        if numbers[0] > numbers[1]:
            raise Invalid(f"min must not exceed max, got {show(value)}")
        for number in numbers:
            self.bounds.check(number)
        return (numbers[0], numbers[1])


class Axcodes(Kind):
    """Orientation codes: 3 letters, one per axis from L/R, A/P, S/I (e.g. R, A, S)."""

    textual = True

    def coerce(self, value: object) -> tuple[str, str, str] | None:
        items = split_items(value)
        if len(items) == 1 and isinstance(items[0], str) and len(items[0]) == 3:
            items = list(items[0])
        if not items:
            return None
        codes = [str(item).strip().upper() for item in items]
        used = [next((i for i, pair in enumerate(_AXES) if code in pair), -1) for code in codes]
        if len(codes) != 3 or sorted(used) != [0, 1, 2]:
            raise Invalid(f"expected 3 letters, one per axis from L/R, A/P, S/I (e.g. [R, A, S]), "
                          f"got {show(value)}")
        return (codes[0], codes[1], codes[2])
