"""Strict JSON request bodies: what Python's ``json`` lets through and a database or a renderer chokes on.

:func:`loads` refuses, with a :class:`BodyError` whose message says why (for a 400):

* bytes that are not UTF-8, and text that is not JSON;
* ``NaN``, ``Infinity``, numbers that overflow to infinity (``1e400``) and integers
  longer than Python parses;
* nesting deeper than :data:`MAX_DEPTH` (deep enough for any real body; ``json``
  itself would raise ``RecursionError`` a little further down: a 500);
* an object with the same key twice (which one wins is a guess);
* strings holding NUL (PostgreSQL text cannot store it) or lone surrogates (they
  cannot be encoded back to UTF-8, so the response would crash).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32


class BodyError(ValueError):
    """A request body we refuse; the message is one sentence for the client."""


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type (for messages: "a JSON array", not "a JSON list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the number {text[:40]} is too large")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than int() accepts (sys.get_int_max_str_digits)
        raise BodyError(f"the number {text[:40]}... has too many digits") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BodyError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BodyError("a string holds a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyError("a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)") from None


def check_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`BodyError` when a decoded value nests too deeply or holds text we refuse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise BodyError(f"it is nested more than {max_depth} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a JSON body strictly (see the module docstring); :class:`BodyError` says what is wrong."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise BodyError("Invalid JSON body: it is not UTF-8 text.") from None
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int,
                           object_pairs_hook=_object)
        check_value(value, max_depth=max_depth)
    except BodyError as exc:
        raise BodyError(f"Invalid JSON body: {exc}.") from None
    except RecursionError:
        raise BodyError(f"Invalid JSON body: it is nested more than {max_depth} levels deep.") from None
    except ValueError as exc:
        raise BodyError(f"Invalid JSON body: {exc}.") from None
    return value
