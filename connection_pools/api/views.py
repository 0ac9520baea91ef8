"""The admin API under ``/api/v1/admin/connection-pools/``: thin views over the service facade.

Admin-only (``IsAdminUser``) with token and session authentication: anonymous callers
get 401 (token authentication comes first, so DRF sends ``WWW-Authenticate: Token``; 403
when ``rest_framework.authtoken`` is not installed and sessions are the only way in),
non-staff users 403, both with a JSON ``detail``; session writes need the CSRF token.
Bad parameters get 400 with a message. No logic lives here: the dashboard,
``poolstats`` and ``/metrics`` read the same service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import conf
from ..core.typed_numbers import decimal_number
from ..service import UnknownPool, connection_pool_service
from . import serializers as s
from .access import AdminAccessMixin, extend_schema
from .bodies import BodyField, StrictBodyMixin, validated

if TYPE_CHECKING:
    # The stubs' name for what APIView.permission_classes holds (a class, or `A & B` of classes).
    from rest_framework.permissions import _PermissionClass

ERRORS = {
    401: OpenApiResponse(s.ErrorSerializer, description="Not authenticated."),
    403: OpenApiResponse(s.ErrorSerializer, description="Not a staff user."),
}


def bad_request(errors: dict[str, Any]) -> Response:
    """400 with a one-line message and the field errors."""
    message = "; ".join(f"{field}: {' '.join(str(e) for e in msgs)}" for field, msgs in errors.items())
    return Response({"detail": f"Invalid parameters - {message}", "errors": errors},
                    status=status.HTTP_400_BAD_REQUEST)


class AdminAPIView(AdminAccessMixin, StrictBodyMixin, APIView):
    """Base view: admin-only, token then session authentication, strict bodies (``body_fields``); its
    schema class, authentication and renderers do not depend on the project's DRF settings (:mod:`.access`)."""

    permission_classes: Sequence[_PermissionClass] = [IsAdminUser]


class StatsView(AdminAPIView):
    """Pool statistics aggregated over every live server process."""

    query_fields = ("per_process",)

    @extend_schema(
        summary="Pool statistics",
        parameters=[OpenApiParameter("per_process", OpenApiTypes.BOOL, description="Add a per-process breakdown.")],
        responses={200: s.StatsSerializer, 400: s.ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = s.StatsQuerySerializer(data=request.query_params)
        if not params.is_valid():
            return bad_request(params.errors)
        return Response(connection_pool_service.pool_stats(per_process=params.validated_data["per_process"]))


class HealthView(AdminAPIView):
    """Every pool's health with its latency (the health job's last result, ``?live=1``: checked now);
    503 when unhealthy (for load balancers)."""

    query_fields = ("live",)

    @extend_schema(
        summary="Pool health",
        parameters=[OpenApiParameter("live", OpenApiTypes.BOOL, description="Check every pool now instead of "
                                     "answering the health job's last result.")],
        responses={200: s.HealthSerializer, 503: s.HealthSerializer, 400: s.ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = s.HealthQuerySerializer(data=request.query_params)
        if not params.is_valid():
            return bad_request(params.errors)
        result = connection_pool_service.health(live=params.validated_data["live"])
        code = status.HTTP_503_SERVICE_UNAVAILABLE if result["status"] == "unhealthy" else status.HTTP_200_OK
        return Response(result, status=code)


class ServerView(AdminAPIView):
    """Every connection on every database server (the census), and every PgBouncer's pools, as the
    server-tier job last sampled them: nothing is sampled by this request."""

    query_fields = ("minutes",)

    @extend_schema(
        summary="Server census and PgBouncer",
        parameters=[OpenApiParameter("minutes", OpenApiTypes.NUMBER,
                                     description="Add each server's history over this many minutes.")],
        responses={200: s.ServerSerializer, 400: s.ErrorSerializer, 503: s.ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        from ..insight import history

        raw_minutes = self.query.get("minutes", "0")
        minutes = decimal_number(raw_minutes)
        most = history.retention() / 60.0
        if minutes is None or not 0 <= minutes <= most:
            return bad_request({"minutes": [f"a number from 0 to {most:g} expected, got {raw_minutes[:40]!r}."]})
        try:
            return Response(connection_pool_service.server(minutes=minutes))
        except history.HistoryUnavailable as exc:
            return Response({"detail": f"History is unavailable: {exc}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class OptimizeView(AdminAPIView):
    """GET: the sizing changes the recommendations call for. POST: apply them (when allowed)."""

    @extend_schema(summary="Optimization suggestions", responses={200: s.OptimizeSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(connection_pool_service.optimize(apply=False))

    @extend_schema(summary="Apply the sizing suggestions", request=None,
                   responses={200: s.OptimizeSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        if not conf.get("TUNER").get("ALLOW_APPLY"):
            return Response(
                {"detail": "Applying suggestions is disabled: set CONNECTION_POOLS['TUNER']['ALLOW_APPLY'] "
                           "(env CONNECTION_POOLS_TUNER_ALLOW_APPLY=true) to allow it."},
                status=status.HTTP_403_FORBIDDEN,
            )
        return Response(connection_pool_service.optimize(apply=True, reason=f"api by {request.user}"))


class ConfigView(AdminAPIView):
    """The effective settings of every pool; every password and secret masked."""

    @extend_schema(summary="Pool configuration", responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(connection_pool_service.config())


class ResetStatsView(AdminAPIView):
    """Reset statistics (one pool, or all) in every process."""

    body_fields = {"pool": BodyField("a pool name such as db_default or redis_cache; absent or null: every pool")}
    query_fields = ("pool",)

    @extend_schema(summary="Reset statistics", request=s.ResetStatsSerializer,
                   parameters=[OpenApiParameter("pool", OpenApiTypes.STR,
                                                description="Instead of the body: the pool to reset.")],
                   responses={200: s.ResetResultSerializer, 400: s.ErrorSerializer,
                              404: s.ErrorSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        if self.body and self.query:
            return Response({"detail": "Invalid request: the pool goes in the body or in the query string, "
                                       "not both."}, status=status.HTTP_400_BAD_REQUEST)
        params = self.body or validated(self.query, self.body_fields, where="query string")
        try:
            # Only an absent or null pool means every pool; an empty name (an unset shell variable) is
            # an unknown pool like any other, never "every pool".
            return Response(connection_pool_service.reset_stats(params.get("pool")))
        except UnknownPool as exc:
            return Response({"detail": str(exc.args[0])}, status=status.HTTP_404_NOT_FOUND)


class RecommendationsView(AdminAPIView):
    """The current recommendations, most severe first."""

    @extend_schema(summary="Recommendations", responses={200: s.RecommendationSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(connection_pool_service.recommendations())
