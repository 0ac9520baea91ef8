"""Numbers people type (environment variables, query strings, command options): ASCII only.

``int()`` and ``float()`` also read ``1_0`` (as 10), ``٣`` and full-width digits, and ``float()``
reads ``nan``, ``inf`` and ``1e309`` (as infinity). Typed into a setting those are typos, not
numbers: they are refused here, and each caller says what it accepts.
"""

from __future__ import annotations

import math
import re

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Longer text is no number we take (and int() of thousands of digits is slow or refused).
_MAX_LENGTH = 64


def whole_number(text: str) -> int | None:
    """``text`` (spaces around allowed) as an int, or None when it is not plain ASCII digits."""
    text = text.strip()
    if len(text) > _MAX_LENGTH or not _WHOLE.fullmatch(text):
        return None
    return int(text)


def decimal_number(text: str) -> float | None:
    """``text`` (spaces around allowed) as a finite float (``12``, ``0.5``, ``.5``, ``1e3``), or None."""
    text = text.strip()
    if len(text) > _MAX_LENGTH or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
