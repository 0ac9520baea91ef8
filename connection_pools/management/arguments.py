"""Command options people type, read as the rest of the app reads numbers (``core/typed_numbers.py``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ..core.typed_numbers import decimal_number


def seconds_option(raw: Any, option: str, most: float, *, returncode: int = 1) -> float:
    """``raw`` (``option``'s value) as seconds, more than 0 and at most ``most``; otherwise one
    sentence (``nan``, ``inf`` or ``1e309`` would wait or loop forever)."""
    seconds = decimal_number(raw) if isinstance(raw, str) else None
    if seconds is None or not 0 < seconds <= most:
        raise CommandError(f"{option} needs a number of seconds greater than 0 and at most {most:g}, "
                           f"not {str(raw)[:40]!r}.", returncode=returncode)
    return seconds
