"""The admin dashboard page (``/admin/connection-pools/``): staff only.

The page holds no logic of its own: it renders the facade's aggregate once for the
first paint, then its script refreshes every few seconds from the admin API
(``stats``, ``health``, ``history``). How each kind of pool shows as a card comes from the
registered kinds' descriptors (:func:`cards`, JSON in the page): the script renders them
without knowing any kind. Reset and "Apply suggestions" are plain POST
forms with CSRF (the script asks for confirmation first) that call the facade.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from rest_framework.exceptions import ValidationError

from .. import conf
from ..api.bodies import validated
from ..api.views import ResetStatsView
from ..core.figures import generic_card
from ..core.kinds import OTHER_GROUP
from ..insight import history
from ..sources.kinds import groups as kind_groups
from ..sources.kinds import registered

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of the page's numbers.
REFRESH_SECONDS = 5

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Anonymous users go to the admin login; logged-in non-staff users get 403."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The connection-pool dashboard is for staff users.")
        return view(request, *args, **kwargs)

    return wrapped


def cards() -> dict[str, object]:
    """What the script needs to draw every pool as a card: the groups of ``GET stats`` in order, the kinds
    each holds, and each kind's card (``*``: a kind no descriptor describes)."""
    groups = [{"group": group, "kinds": [kind.kind for kind in kinds]} for group, kinds in kind_groups().items()]
    groups.append({"group": OTHER_GROUP, "kinds": []})
    described = {kind.kind: kind.card.to_json() for kind in registered() if kind.card is not None}
    return {"groups": groups, "cards": {**described, "*": generic_card().to_json()}}


def _api_base() -> str:
    # The history view lives in the admin API's urls; every endpoint shares its prefix.
    return reverse("connection-pools-history").removesuffix("history")


@require_safe
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page: a card per pool, charts, recommendations, config, processes."""
    from ..service import connection_pool_service

    try:
        stats: Mapping[str, object] | None = connection_pool_service.pool_stats()
    except Exception:  # the page must render (and say so) even if the aggregate cannot be read
        logger.exception("dashboard: pool_stats() failed")
        stats = None
    try:
        config: Mapping[str, object] | None = connection_pool_service.config()
    except Exception:
        logger.exception("dashboard: config() failed")
        config = None
    context = {
        **admin.site.each_context(request),
        "title": "Connection pools",
        "subtitle": None,
        "initial": {"stats": stats, "config": config},
        "settings": {
            "api_base": _api_base(),
            "refresh_seconds": REFRESH_SECONDS,
            "history_minutes": min(30, history.retention() / 60.0),
            "history_interval": history.interval(),
        },
        "allow_apply": bool(conf.get("TUNER").get("ALLOW_APPLY")),
        "kinds": cards(),
    }
    return render(request, "connection_pools/dashboard.html", context)


@require_POST
@staff_required
def reset(request: HttpRequest) -> HttpResponse:
    """Reset the statistics of every pool in every process (POST, CSRF-checked); the form may name
    one pool (``pool``). Anything else in it (a misspelled or repeated field, an empty name) resets
    nothing and says why, as the API does."""
    from ..service import UnknownPool, connection_pool_service

    try:
        # What the API's reset-stats takes (the page's own form sends only its CSRF token: every pool).
        pool = validated(request.POST, ResetStatsView.body_fields, where="form").get("pool")
    except ValidationError as exc:
        detail = exc.detail.get("detail", exc.detail) if isinstance(exc.detail, dict) else exc.detail
        messages.error(request, f"{detail} Nothing was reset.")
        return HttpResponseRedirect(reverse("connection-pools-dashboard"))
    try:
        connection_pool_service.reset_stats(pool)
    except UnknownPool:
        messages.error(request, f"Unknown pool {pool!r}: nothing was reset.")
    else:
        messages.success(request, f"Statistics reset for {pool or 'every pool'} in every process.")
    return HttpResponseRedirect(reverse("connection-pools-dashboard"))


@require_POST
@staff_required
def apply_suggestions(request: HttpRequest) -> HttpResponse:
    """Apply the sizing suggestions to the live pools (only when ``TUNER.ALLOW_APPLY``)."""
    from ..service import connection_pool_service

    if not conf.get("TUNER").get("ALLOW_APPLY"):
        raise PermissionDenied("Applying suggestions is disabled (CONNECTION_POOLS['TUNER']['ALLOW_APPLY']).")
    result = connection_pool_service.optimize(apply=True)
    performed = result.get("performed", [])
    if performed:
        messages.success(request, f"Applied {len(performed)} change(s): " + "; ".join(map(_describe, performed)))
    else:
        messages.info(request, "Nothing to apply: no sizing suggestion is within the tuner's bounds.")
    return HttpResponseRedirect(reverse("connection-pools-dashboard"))


def _describe(change: Any) -> str:
    if isinstance(change, dict):
        return " ".join(str(change[k]) for k in ("pool", "setting", "old", "new") if k in change) or str(change)
    return str(change)
