"""``GET /api/v1/admin/connection-pools/history?pool=...&minutes=...``: the charts' time series."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from ..core.responses import HistoryJSON
from ..core.typed_numbers import decimal_number
from ..insight import history
from ..service import connection_pool_service
from . import serializers as s
from .access import extend_schema
from .derive import serializer_for
from .views import ERRORS, AdminAPIView, bad_request

HistorySerializer = serializer_for(HistoryJSON, overrides={
    "series": serializers.DictField(child=s.HistoryPointSerializer(many=True))})


class PoolHistoryView(AdminAPIView):
    """Each pool's key figures over the last ``minutes``, sampled every ``HISTORY_INTERVAL`` seconds."""

    query_fields = ("pool", "minutes")

    @extend_schema(
        summary="Pool history (dashboard charts)",
        parameters=[
            OpenApiParameter("pool", OpenApiTypes.STR, description="One pool (e.g. db_default); every pool if absent."),
            OpenApiParameter("minutes", OpenApiTypes.NUMBER, description="Window: > 0, at most the retention."),
        ],
        responses={200: HistorySerializer, 400: s.ErrorSerializer, 503: s.ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        raw_minutes = self.query.get("minutes", "60")
        minutes = decimal_number(raw_minutes)
        max_minutes = history.retention() / 60.0
        if minutes is None or minutes <= 0 or minutes > max_minutes:
            expected = f"a number > 0 and at most {max_minutes:g} expected, got {raw_minutes[:40]!r}."
            return bad_request({"minutes": [expected]})
        pool = self.query.get("pool")
        if pool is not None:
            known = connection_pool_service.pool_names()
            if pool not in known:
                return bad_request({"pool": [f"unknown pool {pool!r}; known pools: {', '.join(known)}."]})
        try:
            data = connection_pool_service.history(pool, minutes)
        except history.HistoryUnavailable as exc:
            return Response({"detail": f"History is unavailable: {exc}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(data)
