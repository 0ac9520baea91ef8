"""The workload's inputs, checked strictly: a bad value is a 400 with a sentence, never a 500 or a guess.

JSON bodies go through :func:`connection_pools.api.jsonbody.loads` (deep nesting, ``NaN``,
``1e400``, NUL, lone surrogates...); then each field must have its exact type and fit
the column it goes to (an ``IntegerField`` holds 32 bits in PostgreSQL).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.db import connections

from connection_pools.api import jsonbody

from .models import Item

NAME_MAX_LENGTH = Item._meta.get_field("name").max_length
LIMIT_MAX = 100
SLEEP_MAX_SECONDS = 30.0
_DIGITS = re.compile(r"[0-9]{1,3}")  # ASCII only: "²".isdigit() is true, int("²") is an error


class InvalidInput(ValueError):
    """A request the workload refuses; the message is the 400's sentence."""


def _object(raw: bytes, accepted: str) -> dict[str, Any]:
    try:
        data = jsonbody.loads(raw or b"{}")
    except jsonbody.BodyError as exc:
        raise InvalidInput(f"{exc} Expected {accepted}.") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"Expected {accepted}, not a JSON {jsonbody.json_kind(data)}.")
    return data


def _known_keys(data: dict[str, Any], keys: tuple[str, ...], accepted: str) -> None:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise InvalidInput(f"Unknown key(s) {', '.join(map(repr, unknown))}: expected {accepted}.")


def _name(data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name is required: a non-empty string.")
    name = name.strip()
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"name is too long: at most {NAME_MAX_LENGTH} characters.")
    return name


def _integer_range() -> tuple[int, int]:
    field = Item._meta.get_field("quantity")
    low, high = connections["default"].ops.integer_field_range(field.get_internal_type())
    return int(low), int(high)


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value <= SLEEP_MAX_SECONDS:
        raise InvalidInput(f"{what} must be a number of seconds from 0 to {SLEEP_MAX_SECONDS:g}.")
    return float(value)


@dataclass(frozen=True)
class NewItem:
    """``POST /items/``: ``{"name": str, "quantity": int}``."""

    name: str
    quantity: int = 0

    ACCEPTED = 'a JSON object {"name": string, "quantity": whole number}'

    @classmethod
    def from_body(cls, raw: bytes) -> NewItem:
        data = _object(raw, cls.ACCEPTED)
        _known_keys(data, ("name", "quantity"), cls.ACCEPTED)
        quantity = data.get("quantity", 0)
        low, high = _integer_range()
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not low <= quantity <= high:
            raise InvalidInput(f"quantity must be a whole number from {low} to {high}.")
        return cls(name=_name(data), quantity=quantity)


@dataclass(frozen=True)
class HeldWrite:
    """``POST /slow-write/``: ``{"name": str, "seconds": number}``."""

    name: str
    seconds: float

    ACCEPTED = 'a JSON object {"name": string, "seconds": number from 0 to 30}'

    @classmethod
    def from_body(cls, raw: bytes) -> HeldWrite:
        data = _object(raw, cls.ACCEPTED)
        _known_keys(data, ("name", "seconds"), cls.ACCEPTED)
        return cls(name=_name(data), seconds=_seconds(data.get("seconds", 1.0), "seconds"))


def limit_from_query(raw: str | None) -> int:
    """``?limit=``: a whole number from 1 to :data:`LIMIT_MAX` (default 20)."""
    if raw is None:
        return 20
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= LIMIT_MAX:
        raise InvalidInput(f"limit must be a whole number from 1 to {LIMIT_MAX}.")
    return int(raw)


def seconds_from_query(raw: str | None) -> float:
    """``?seconds=``: a number of seconds from 0 to :data:`SLEEP_MAX_SECONDS` (default 1)."""
    if raw is None:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    return _seconds(value, "seconds")
