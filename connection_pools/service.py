"""The facade every interface reads: API, dashboard, ``poolstats``, ``/metrics``, scripts.

``from connection_pools.service import connection_pool_service``:

* :meth:`~ConnectionPoolService.view`: the typed cluster view
  (:class:`~connection_pools.cluster.view.ClusterView`) every surface reads;
* :meth:`~ConnectionPoolService.pool_stats` / ``await get_pool_stats()``: the guide's
  response shape (made by :mod:`connection_pools.presenter`), over every live server
  process; this process's own numbers with ``"source": "local"`` when Redis cannot be
  reached -- it never fails;
* :meth:`~ConnectionPoolService.health` (the health job's last result, or ``live=True``),
  :meth:`~ConnectionPoolService.recommendations`, :meth:`~ConnectionPoolService.optimize`,
  :meth:`~ConnectionPoolService.config` (secrets masked),
  :meth:`~ConnectionPoolService.reset_stats` (every process),
  :meth:`~ConnectionPoolService.pool_names`, :meth:`~ConnectionPoolService.history`.

Reads have no side effects: alerts, history, resets and sizing happen in background jobs
(:mod:`connection_pools.jobs`). It works in a plain script too: with
``DJANGO_SETTINGS_MODULE`` set, the first call sets Django up (the guide's monitoring script
needs only its import line changed).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace
from typing import Any

from asgiref.sync import sync_to_async

from . import conf, presenter
from .cluster import publish
from .cluster import view as cluster_view
from .cluster.store import StoreUnavailable
from .cluster.view import ClusterView
from .conf.aliases import PRIMARY, alias_specs, pool_name_for_alias, pool_name_for_redis
from .conf.pool_options import is_pooled
from .core.masking import mask, mask_text  # noqa: F401 - mask_text is part of this module's API
from .core.reports import HealthReport
from .core.responses import (
    HealthJSON,
    HistoryJSON,
    OptimizeJSON,
    RecommendationJSON,
    ResetResultJSON,
    ServerJSON,
    SuggestedChangeJSON,
)
from .insight import health as health_checks
from .insight import tuner
from .insight.advisor import bounds
from .insight.findings import findings
from .sources.base import registry
from .sources.kinds import registered

logger = logging.getLogger(__name__)


class UnknownPool(LookupError):
    """A pool name that no process and no setting knows."""


def _ensure_django() -> None:
    """Set Django up in a plain script (``DJANGO_SETTINGS_MODULE`` must name the settings)."""
    from django.apps import apps

    if not apps.ready and os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()


class ConnectionPoolService:
    """Statistics, health, recommendations, sizing and configuration of every pool."""

    # -- statistics -------------------------------------------------------------------------------
    def view(self, *, per_process: bool = False, hosts: bool = False) -> ClusterView:
        """The typed cluster view (the rollup when fresh; see :mod:`connection_pools.cluster.view`)."""
        _ensure_django()
        return cluster_view.read(per_process=per_process, hosts=hosts)

    def pool_stats(self, *, per_process: bool = False) -> dict[str, Any]:
        """The guide's stats response over every live process (see docs/api.md).

        The guide's JSON, as a plain dict (its pool groups depend on the registered kinds:
        :class:`~connection_pools.core.responses.StatsJSON` describes the rest)."""
        now = time.time()
        current = self.view(per_process=per_process)
        return presenter.stats(current, findings(current, now=now).recommendations, now=now)

    async def get_pool_stats(self, *, per_process: bool = False) -> dict[str, Any]:
        """``pool_stats`` for async code (runs in a worker thread: it does network I/O)."""
        return await sync_to_async(self.pool_stats, thread_sensitive=False)(per_process=per_process)

    def recommendations(self) -> list[RecommendationJSON]:
        """The current recommendations, most severe first (``{pool, issue, suggestion, severity, ...}``)."""
        current = self.view()
        return [presenter.recommendation(rec) for rec in findings(current).recommendations]

    # -- health ------------------------------------------------------------------------------------
    def health(self, *, live: bool = False) -> HealthJSON:
        """Every pool's health with latency, replica lag, the server budgets and the status.

        The health job's last result (any process's, with its ``age_seconds``); every pool is
        checked now, concurrently within ``HEALTH_CHECK_TIMEOUT``, when ``live``, when no result
        younger than three ``HEALTH_INTERVAL`` exists (no job ran: a command, a test), or when
        the cluster store cannot be reached (then only this process can tell). A check made here
        is only answered: the health job alone stores results (a read has no side effects).
        """
        current = self.view()
        report = None if live or not current.redis_available else health_checks.latest(current.health)
        if report is None or time.time() - report.checked_at > health_checks.interval() * 3:
            report = health_checks.probe()
        return self._present_health(current, report)

    def cached_health(self) -> HealthJSON | None:
        """The health job's last result, or None when none exists yet (never checks anything)."""
        current = self.view()
        report = health_checks.latest(current.health)
        return None if report is None else self._present_health(current, report)

    @staticmethod
    def _present_health(current: ClusterView, report: HealthReport) -> HealthJSON:
        now = time.time()
        # The report kinds' health (PgBouncer) comes from their latest reports, never from a check here.
        reported = tuple(check for kind in registered() if kind.report_health is not None
                         for check in kind.report_health(current.reports, now))
        report = replace(report, pools=report.pools + reported)
        budgets = health_checks.budgets(current.pools, report.limits)
        status = health_checks.overall_status(report.pools, budgets)
        primary = alias_specs().get(PRIMARY)
        return presenter.health(report, budgets, status, now=time.time(),
                                primary_server=primary.server if primary is not None else None)

    # -- the server tier ---------------------------------------------------------------------------------
    def server(self, *, minutes: float = 0.0) -> ServerJSON:
        """Every server's census and every PgBouncer, as the server-tier job last sampled them (never
        sampled here), with their recommendations and, for ``minutes`` > 0, each server's history.

        Query text is shown only when ``CENSUS["QUERY_TEXT_LENGTH"]`` > 0. Raises
        :class:`~connection_pools.insight.history.HistoryUnavailable` for history without Redis.
        """
        from .insight import history

        now = time.time()
        current = self.view()
        census = conf.get("CENSUS")
        series = history.server_history(minutes) if minutes > 0 else None
        return presenter.server(current, findings(current, now=now).recommendations, now=now,
                                query_text=int(census["QUERY_TEXT_LENGTH"] or 0) > 0,
                                stale_after=float(census["INTERVAL"]) * 3 + float(census["TIMEOUT"]), history=series)

    # -- sizing ----------------------------------------------------------------------------------------
    def optimize(self, *, apply: bool = False, reason: str = "manual") -> OptimizeJSON:
        """Sizing changes the recommendations call for: ``{"performed": [...], "suggested": [...], ...}``.

        With ``apply`` the changes are made to the live pools of this process and recorded for
        every other one to adopt (``performed`` lists what really changed).
        """
        current = self.view()
        found = findings(current)
        changes = tuner.plan(current.pools, found.recommendations, found.budgets, bounds())
        suggested = [SuggestedChangeJSON(pool=c.pool, alias=c.alias, setting=setting, old=getattr(c.old, setting),
                                         new=getattr(c.new, setting), reasons=list(c.reasons))
                     for c in changes for setting in tuner.SIZING_SETTINGS
                     if getattr(c.old, setting) != getattr(c.new, setting)]
        performed = [asdict(p) for p in tuner.apply(changes, reason=reason)] if apply else []
        return OptimizeJSON(performed=performed, suggested=suggested,
                            recommendations=[presenter.recommendation(rec) for rec in found.recommendations],
                            source=current.source)

    # -- configuration -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The effective settings of every pool, with every password and secret masked (URLs too)."""
        _ensure_django()
        from django.conf import settings

        databases = {}
        for alias, db in settings.DATABASES.items():
            options = dict(db.get("OPTIONS") or {})
            options.pop("pool", None)
            pooled = is_pooled(db)
            databases[alias] = {
                "pool": pool_name_for_alias(alias),
                "engine": db.get("ENGINE"),
                "mode": alias_specs()[alias].mode if alias in alias_specs() else ("pool" if pooled else "persistent"),
                "host": db.get("HOST"), "port": db.get("PORT"), "name": db.get("NAME"), "user": db.get("USER"),
                "password": db.get("PASSWORD"),
                "conn_max_age": db.get("CONN_MAX_AGE"), "conn_health_checks": db.get("CONN_HEALTH_CHECKS"),
                "options": options,
                "pool_settings": self._effective_pool(alias, db) if pooled else None,
            }
        redis_pools = {name: {"pool": pool_name_for_redis(name), **dict(values)}
                       for name, values in conf.get("REDIS").items()}
        rest = {key: value for key, value in conf.get_config().items() if key not in ("REDIS",)}
        masked: dict[str, Any] = mask({
            "database_pools": databases,
            "redis_pools": redis_pools,
            "caches": {name: {k: v for k, v in cache.items()} for name, cache in settings.CACHES.items()},
            "settings": rest,
        })
        return masked

    @staticmethod
    def _effective_pool(alias: str, db: dict[str, Any]) -> dict[str, Any]:
        source = registry.get(pool_name_for_alias(alias))
        if source is not None:
            shown = dict(source.config())
            if shown:
                return shown
        overrides = (db.get("OPTIONS") or {}).get("pool")  # an alias we cannot resolve shows its raw overrides
        return {**conf.get("DATABASE_POOL"), **(overrides if isinstance(overrides, dict) else {})}

    # -- resets and names ------------------------------------------------------------------------------------
    def pool_names(self) -> list[str]:
        """Every pool name known here: configured aliases and Redis pools, and every source."""
        _ensure_django()
        names = {pool_name_for_alias(alias) for alias in alias_specs()}
        names.update(pool_name_for_redis(name) for name in conf.get("REDIS"))
        names.update(registry.names())
        return sorted(names)

    def reset_stats(self, pool: str | None = None) -> ResetResultJSON:
        """Reset the statistics of ``pool`` (None: every pool) in every process.

        Raises :class:`UnknownPool` for a name no setting or process knows. Without
        Redis only this process is reset (``"scope": "local"``).
        """
        if pool is not None and pool not in self.pool_names():
            raise UnknownPool(f"Unknown pool {pool!r}; known pools: {', '.join(self.pool_names())}.")
        try:
            epoch: int | None = publish.reset_cluster(pool)
            scope = "cluster"
        except StoreUnavailable:
            registry.reset(pool)
            epoch, scope = None, "local"
        if publish.is_publishing():
            publish.publish()
        logger.info("pool statistics reset: %s (%s)", pool or "every pool", scope)
        return ResetResultJSON(reset=pool or "all", scope=scope, epoch=epoch, reset_at=time.time())

    # -- history -----------------------------------------------------------------------------------------
    def history(self, pool: str | None = None, minutes: float = 60) -> HistoryJSON:
        """The dashboard's time series (see :mod:`connection_pools.insight.history`)."""
        from .insight import history

        return history.history(pool, minutes)


#: The module-level instance every interface uses.
connection_pool_service = ConnectionPoolService()
