"""Nearest-name suggestions for unknown keys, sections and choices.

Uses the optimal-string-alignment (restricted Damerau–Levenshtein) distance,
as NiftyNet's ``select_module`` did, compared case-insensitively.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["edit_distance", "closest", "did_you_mean"]


def edit_distance(a: str, b: str) -> int:
    """Return the optimal-string-alignment distance between two strings.

    Args:
        a: First string.
        b: Second string.

    Returns:
        The number of insertions, deletions, substitutions and adjacent
        transpositions that turn ``a`` into ``b``.
    """
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            cost = 0 if char_a == char_b else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def closest(name: str, candidates: Iterable[str], max_distance: int | None = None) -> str | None:
    """Return the candidate nearest to ``name``, or None if none is near enough.

    Args:
        name: The unknown name.
        candidates: Valid names.
        max_distance: Largest accepted distance; by default a third of the
            name's length, between 1 and 3.

    Returns:
        The nearest candidate (ties go to the first listed), or None.
    """
    limit = max(1, min(3, len(name) // 3)) if max_distance is None else max_distance
    best, best_distance = None, limit + 1
    for candidate in candidates:
        distance = edit_distance(name.lower(), candidate.lower())
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


def did_you_mean(name: str, candidates: Iterable[str], quote: str = "'",
                 max_distance: int | None = None) -> str:
    """Return ``"; did you mean 'x'?"`` for the nearest candidate, or ``""``.

    Args:
        name: The unknown name.
        candidates: Valid names.
        quote: Characters put around the suggestion (``"'"``, or ``"[]"`` for
            INI section names).
        max_distance: As for :func:`closest`; 0 suggests only a different case.
    """
    match = closest(name, candidates, max_distance)
    if match is None:
        return ""
    left, right = (quote[0], quote[-1])
    return f"; did you mean {left}{match}{right}?"
