"""Strict request bodies for the admin API: a JSON object (or form) with known keys, else 400.

Every admin view declares the keys its body accepts (:class:`BodyField`, none for the
read-only endpoints); :class:`StrictBodyMixin` checks the body after authentication,
before the handler runs, and answers 400 with a ``detail`` naming what is accepted.
A wrongly typed body (``"db_default"``, ``null``, ``[]``, ``1``, ``true``) or a
misspelled key is refused: it never widens to a default such as "reset every pool".
JSON is parsed by :class:`StrictJSONParser` (:mod:`connection_pools.jsonbody`): deep
nesting, ``NaN``, huge numbers and unencodable text are a 400, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request

from . import jsonbody

#: Form fields a browser may add to any form post; never a parameter of ours.
FORM_EXTRAS = ("csrfmiddlewaretoken",)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser on :func:`connection_pools.jsonbody.loads`, bounded by ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise ParseError(f"Invalid JSON body: it is larger than {limit} bytes.")
        try:
            return jsonbody.loads(raw)
        except jsonbody.BodyError as exc:
            raise ParseError(str(exc)) from None


PARSER_CLASSES = [StrictJSONParser, FormParser, MultiPartParser]


@dataclass(frozen=True)
class BodyField:
    """One key a body may hold: a string (or null), at most ``max_length`` characters."""

    description: str
    max_length: int = 200


def describe(fields: Mapping[str, BodyField]) -> str:
    """What a body may be, for the 400 message."""
    if not fields:
        return "no request body (or an empty JSON object {})"
    keys = "; ".join(f"{name} ({field.description})" for name, field in fields.items())
    return f"no body, or a JSON object (or form) with only these keys: {keys}"


def _as_mapping(data: Any, where: str, fields: Mapping[str, BodyField]) -> dict[str, Any]:
    if isinstance(data, QueryDict):
        lists = {key: values for key, values in data.lists() if key not in FORM_EXTRAS}
        repeated = sorted(key for key, values in lists.items() if len(values) != 1)
        if repeated:
            raise ValidationError({"detail": f"Invalid {where}: {', '.join(repeated)} given more than once; "
                                             f"expected {describe(fields)}."})
        return {key: values[0] for key, values in lists.items()}
    if not isinstance(data, dict):
        raise ValidationError({"detail": f"Invalid {where}: a JSON {jsonbody.json_kind(data)}; "
                                         f"expected {describe(fields)}."})
    return dict(data)


def validated(data: Any, fields: Mapping[str, BodyField], *, where: str = "body") -> dict[str, str | None]:
    """``data`` (parsed body or query) as known keys with string or null values; ValidationError otherwise."""
    values = _as_mapping(data, where, fields)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValidationError({"detail": f"Invalid {where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                         f"expected {describe(fields)}."})
    for name, value in values.items():
        field = fields[name]
        if value is not None and (not isinstance(value, str) or len(value) > field.max_length):
            raise ValidationError({"detail": f"Invalid {where}: {name} must be a string of at most "
                                             f"{field.max_length} characters or null, not {value!r:.60}."})
    return values


def body_of(request: Request) -> Any:
    """The parsed body: ``{}`` when there is none (DRF parses an empty body as ``{}`` or an empty form),
    else whatever the client sent, ``null`` (None) included."""
    data = request.data
    if isinstance(data, QueryDict | dict) and not data:
        return {}
    return data


class StrictBodyMixin:
    """Checks each request's body against :attr:`body_fields` once the caller is authenticated."""

    parser_classes: Sequence[type[BaseParser]] = PARSER_CLASSES
    #: The keys the body of this endpoint may hold (none: it takes no body).
    body_fields: Mapping[str, BodyField] = {}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.body = validated(body_of(request), self.body_fields)
