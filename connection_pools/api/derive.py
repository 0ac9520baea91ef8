"""DRF serializers (the OpenAPI schema of the responses) derived from the one description of each shape:
a TypedDict of :mod:`connection_pools.core.responses`, a dataclass, or a kind's entry fields
(:class:`~connection_pools.core.kinds.EntryField`). So the schema and the presenter cannot drift apart.

An annotation maps onto a field: ``int``/``float``/``bool``/``str`` onto theirs, ``X | None`` allows
null, a union of several types (a setting's value) or ``object`` is any JSON value, ``Literal[...]`` is
a choice, ``list[X]`` and ``dict[str, X]`` hold X, a TypedDict or dataclass is a nested serializer
(named after it, without ``JSON``); ``Annotated[X, Doc("...")]`` describes the key, and a TypedDict's
``NotRequired`` keys are not required.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

from rest_framework import serializers

from ..core.kinds import EntryField
from ..core.responses import Doc

#: What these serializers read: JSON-shaped mappings (the presenter's output); never a model.
Shape = Mapping[str, object]
SerializerClass = type[serializers.Serializer[Shape]]

_made: dict[tuple[object, str], SerializerClass] = {}


def _unwrap(annotation: Any) -> tuple[Any, str]:
    """The annotation without ``Annotated``/``NotRequired``, and its description."""
    help_text = ""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            docs = [m.text for m in annotation.__metadata__ if isinstance(m, Doc)]
            help_text = help_text or (docs[0] if docs else "")
            annotation = get_args(annotation)[0]
        elif origin is NotRequired:
            annotation = get_args(annotation)[0]
        else:
            return annotation, help_text


def _described(annotation: Any) -> bool:
    return isinstance(annotation, type) and (is_typeddict(annotation) or dataclasses.is_dataclass(annotation))


def field_for(annotation: Any, *, help_text: str = "", required: bool = True) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field of one annotation (see the module docstring)."""
    annotation, described = _unwrap(annotation)
    help_text = help_text or described
    options: dict[str, Any] = {"required": required}
    if help_text:
        options["help_text"] = help_text
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) < len(get_args(annotation)):
            options["allow_null"] = True
        if len(members) > 1:
            return serializers.JSONField(**options)
        annotation = members[0]
    if _described(annotation):
        return serializer_for(annotation)(**options)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return serializers.ChoiceField(choices=list(args), **options)
    if origin in (list, tuple):
        item, _ = _unwrap(args[0])
        if _described(item):
            return serializer_for(item)(many=True, **options)
        return serializers.ListField(child=field_for(item), **options)
    if origin is dict:
        value, _ = _unwrap(args[1])
        if value is object or get_origin(value) in (Union, types.UnionType):
            return serializers.DictField(**options)  # any JSON values
        return serializers.DictField(child=field_for(value), **options)
    simple = {int: serializers.IntegerField, float: serializers.FloatField, bool: serializers.BooleanField,
              str: serializers.CharField}
    if annotation in simple:
        if annotation is str:
            options["allow_blank"] = True
        made: serializers.Field[Any, Any, Any, Any] = simple[annotation](**options)
        return made
    if annotation is object:
        return serializers.JSONField(**options)
    raise TypeError(f"no serializer field for {annotation!r}")


def _name(shape: type) -> str:
    return shape.__name__.removesuffix("JSON")


def serializer_for(shape: type, *, name: str = "", first: Mapping[str, Any] | None = None,
                   overrides: Mapping[str, serializers.Field[Any, Any, Any, Any]] | None = None) -> SerializerClass:
    """The serializer of a TypedDict or dataclass (``first``: keys before its own, as annotations; ``overrides``:
    fields that another description describes). Made once per shape."""
    key = (shape, name)
    if key in _made and not first and not overrides:
        return _made[key]
    hints = get_type_hints(shape, include_extras=True)
    # NotRequired from the hints: with postponed annotations a TypedDict's own __optional_keys__ misses it.
    optional = {key_ for key_, hint in hints.items() if get_origin(hint) is NotRequired}
    attrs: dict[str, Any] = {"__doc__": shape.__doc__, "__module__": __name__}
    attrs.update({key_: field_for(hint) for key_, hint in (first or {}).items()})
    for key_, hint in hints.items():
        attrs[key_] = (overrides or {}).get(key_) or field_for(hint, required=key_ not in optional)
    made: SerializerClass = type(f"{name or _name(shape)}Serializer", (serializers.Serializer,), attrs)
    if not first and not overrides:
        _made[key] = made
    return made


def entry_serializer(name: str, fields: Iterable[EntryField], doc: str = "") -> SerializerClass:
    """The serializer of a kind's entries in ``GET stats``, from its descriptor's fields."""
    attrs: dict[str, Any] = {"__doc__": doc or None, "__module__": __name__}
    attrs.update({f.name: field_for(f.annotation, help_text=f.help) for f in fields})
    made: SerializerClass = type(f"{name}Serializer", (serializers.Serializer,), attrs)
    return made
