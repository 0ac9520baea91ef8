"""Reading values back from the JSON wire form: strict about types, tolerant of missing keys.

A value of the wrong type reads as "absent" (0, "", None), never as a crash: an older or
newer process may publish a slightly different shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any


def number(value: Any) -> float | None:
    """A finite int or float (not a bool) as float, else None."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        found = float(value)  # an int beyond a float's range raises OverflowError
    except OverflowError:
        return None
    return found if math.isfinite(found) else None


def whole(value: Any) -> int | None:
    """A finite number as int, else None."""
    found = number(value)
    return None if found is None else int(found)


def count(value: Any) -> int:
    """A finite number as int, else 0."""
    return whole(value) or 0


def seconds(value: Any) -> float:
    """A finite number as float, else 0.0."""
    return number(value) or 0.0


def text(value: Any) -> str:
    """A string, else ""."""
    return value if isinstance(value, str) else ""


def optional_text(value: Any) -> str | None:
    """A string, else None."""
    return value if isinstance(value, str) else None


def flag(value: Any) -> bool | None:
    """A bool, else None."""
    return value if isinstance(value, bool) else None


def items(value: Any) -> Iterator[Mapping[str, Any]]:
    """The mappings in a list (anything else in it, or a non-list, is skipped)."""
    if isinstance(value, list | tuple):
        yield from (item for item in value if isinstance(item, Mapping))


def mapping(value: Any) -> Mapping[str, Any]:
    """A mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}
