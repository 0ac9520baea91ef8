"""Serializers of the admin API: query/body parameters (validated, 400 on bad input) and
response shapes for the OpenAPI schema.

The response serializers are derived (:mod:`.derive`) from the one description of each shape:
the TypedDicts the presenter makes (:mod:`connection_pools.core.responses`) and, for the pool
groups of ``GET stats``, the registered kinds' descriptors; ``tests/test_api_schema.py``
validates real responses against the generated schema (every key present, none extra).
"""

from __future__ import annotations

from typing import Annotated, Any

from rest_framework import serializers

from ..core.kinds import OTHER_GROUP, PoolKind, generic_kind
from ..core.responses import (
    CensusJSON,
    Doc,
    DurationSummaryJSON,
    ErrorJSON,
    HealthJSON,
    OptimizeJSON,
    PgBouncerJSON,
    PoolCheckJSON,
    RecommendationJSON,
    ResetResultJSON,
    ServerJSON,
    StatsJSON,
)
from ..insight.history import HistoryPoint, ServerPoint
from ..insight.tuner import Performed
from ..sources.kinds import groups
from .derive import SerializerClass, Shape, entry_serializer, serializer_for


# --- parameters -------------------------------------------------------------------------------
class StatsQuerySerializer(serializers.Serializer[Shape]):
    """``GET stats?per_process=1``."""

    per_process = serializers.BooleanField(required=False, default=False,
                                           help_text="Add a per-process breakdown (`1`/`0`, `true`/`false`).")


class HealthQuerySerializer(serializers.Serializer[Shape]):
    """``GET health?live=1``."""

    live = serializers.BooleanField(required=False, default=False,
                                    help_text="Check every pool now (`1`/`0`, `true`/`false`).")


class ResetStatsSerializer(serializers.Serializer[Shape]):
    """``POST reset-stats`` body (or query): ``pool`` to reset one pool, absent for all."""

    pool = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=200,
                                 help_text="Pool name, e.g. `db_default` or `redis_cache`; absent: every pool.")


# --- responses ----------------------------------------------------------------------------------------------
DurationSummarySerializer = serializer_for(DurationSummaryJSON)
RecommendationSerializer = serializer_for(RecommendationJSON)
PoolCheckSerializer = serializer_for(PoolCheckJSON)
HealthSerializer = serializer_for(HealthJSON)
ResetResultSerializer = serializer_for(ResetResultJSON)
ErrorSerializer = serializer_for(ErrorJSON)
OptimizeSerializer = serializer_for(OptimizeJSON, overrides={
    "performed": serializer_for(Performed, name="PerformedChange")(many=True)})
CensusSerializer = serializer_for(CensusJSON)
PgBouncerSerializer = serializer_for(PgBouncerJSON)
#: A point of a series: ``t``, then the point's figures.
POINT_TIME = {"t": Annotated[float, Doc("Unix time of the sample.")]}
HistoryPointSerializer = serializer_for(HistoryPoint, first=POINT_TIME)
ServerPointSerializer = serializer_for(ServerPoint, first=POINT_TIME)
ServerSerializer = serializer_for(ServerJSON, overrides={
    "history": serializers.DictField(child=ServerPointSerializer(many=True), help_text="With `minutes` > 0.")})

_groups: dict[tuple[str, tuple[int, ...]], SerializerClass] = {}


def group_serializer(kinds: tuple[PoolKind, ...]) -> SerializerClass:
    """The entries of one group: from the report kind's TypedDict, or from its kinds' fields (one shape: E502)."""
    first = kinds[0]
    key = (first.group or "", tuple(id(kind) for kind in kinds))
    if key not in _groups:
        if first.entry_shape is not None:
            _groups[key] = serializer_for(first.entry_shape)
        else:
            fields = list(first.fields)
            choices = [kind.kind for kind in kinds]
            _groups[key] = entry_serializer(first.schema_name or first.kind.title(), fields,
                                            f"One entry of `{first.group}` ({', '.join(choices)}).")
    return _groups[key]


class StatsSerializer(serializers.Serializer[Shape]):
    """``GET stats``: one group per registered kind of pool (its descriptor describes its entries), then the rest."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields: dict[str, serializers.Field[Any, Any, Any, Any]] = {}
        for group, kinds in groups().items():
            fields[group] = serializers.DictField(child=group_serializer(kinds)(), help_text=kinds[0].help or None)
        fields[OTHER_GROUP] = serializers.DictField(
            child=group_serializer((generic_kind("other"),))(), required=False,
            help_text="Pools of a kind no registered descriptor describes, under the statistics' own names.")
        fields.update(serializer_for(StatsJSON)().get_fields())
        return fields
