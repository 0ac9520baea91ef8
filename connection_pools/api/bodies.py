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

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import QueryDict
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request

from . import jsonbody

#: Form fields a browser may add to any form post; never a parameter of ours.
FORM_EXTRAS = ("csrfmiddlewaretoken",)
#: Query parameters DRF itself reads (the response format).
FRAMEWORK_QUERY = ("format",)


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


class StrictMultiPartParser(MultiPartParser):
    """DRF's multipart parser, bounded by ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (no endpoint takes files),
    refusing a body that is no multipart document: Django's parser reads one without its boundary
    as an empty form, which would then pass for "no body" (``reset-stats``: every pool)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise ParseError(f"Invalid multipart body: it is larger than {limit} bytes.")
        boundary = parse_header_parameters(media_type or "")[1].get("boundary", "")
        if raw and (not boundary or f"--{boundary}".encode("latin-1", "replace") not in raw):
            raise ParseError("Invalid multipart body: no part delimited by the boundary its content type names.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


class StrictFormParser(FormParser):
    """DRF's form parser, refusing a body of which nothing can be read (``&&``, ``=x``): an empty
    form would pass for "no body" (``reset-stats``: every pool)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read()
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        if raw.strip() and not data:
            raise ParseError(f"Invalid form body: nothing could be read from its {len(raw)} bytes.")
        return data


PARSER_CLASSES = [StrictJSONParser, StrictFormParser, StrictMultiPartParser]


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


def query_of(query: QueryDict, names: Sequence[str]) -> dict[str, str]:
    """The query string as one value per known name (DRF's ``format`` set aside); a repeated or
    unknown parameter is a ValidationError naming what is accepted, never silently dropped."""
    lists = {key: values for key, values in query.lists() if key not in FRAMEWORK_QUERY}
    accepted = f"only {', '.join(names)}" if names else "none"
    unknown = sorted(set(lists) - set(names))
    if unknown:
        raise ValidationError({"detail": f"Invalid query string: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                                         f"this endpoint takes {accepted}."})
    repeated = sorted(key for key, values in lists.items() if len(values) != 1)
    if repeated:
        raise ValidationError({"detail": f"Invalid query string: {', '.join(repeated)} given more than once."})
    return {key: values[0] for key, values in lists.items()}


def body_of(request: Request) -> Any:
    """The parsed body: ``{}`` when there is none (DRF parses an empty body as ``{}`` or an empty form),
    else whatever the client sent, ``null`` (None) included. (A form or multipart body nothing can
    be read from is refused by its parser, so an empty form here really was empty.)"""
    data = request.data
    if isinstance(data, QueryDict | dict) and not data:
        return {}
    return data


class StrictBodyMixin:
    """Checks each request's body against :attr:`body_fields` once the caller is authenticated."""

    parser_classes: Sequence[type[BaseParser]] = PARSER_CLASSES
    #: The keys the body of this endpoint may hold (none: it takes no body).
    body_fields: Mapping[str, BodyField] = {}
    #: The query parameters this endpoint reads (besides DRF's ``format``); None: not checked here.
    query_fields: Sequence[str] | None = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.body = validated(body_of(request), self.body_fields)
        self.query = {} if self.query_fields is None else query_of(request.query_params, self.query_fields)
