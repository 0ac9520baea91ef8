"""The facade every interface reads: API, dashboard, ``poolstats``, ``/metrics``, scripts.

``from connection_pools.service import connection_pool_service``:

* :meth:`~ConnectionPoolService.pool_stats` / ``await get_pool_stats()``: the guide's
  response shape, aggregated over every live process (snapshots published to Redis by
  :mod:`connection_pools.publisher`); this process's own numbers with
  ``"source": "local"`` when Redis cannot be reached -- it never fails;
* :meth:`~ConnectionPoolService.health`, :meth:`~ConnectionPoolService.recommendations`,
  :meth:`~ConnectionPoolService.optimize`, :meth:`~ConnectionPoolService.config`
  (secrets masked), :meth:`~ConnectionPoolService.reset_stats` (every process),
  :meth:`~ConnectionPoolService.pool_names`, :meth:`~ConnectionPoolService.history`.

It works in a plain script too: with ``DJANGO_SETTINGS_MODULE`` set, the first call
sets Django up (the guide's monitoring script needs only its import line changed).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from asgiref.sync import sync_to_async

from . import advisor, aggregate, alerts, background, conf, health, publisher, stats, tuner
from .masking import mask, mask_text  # noqa: F401 - mask_text is part of this module's API

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

    # -- gathering ------------------------------------------------------------------------------
    def _snapshots(self) -> tuple[list[dict[str, Any]], bool]:
        """Every live process's snapshot (resets applied) and whether Redis answered."""
        _ensure_django()
        try:
            cluster = publisher.read_cluster()
        except publisher.RedisUnavailable as exc:
            logger.debug("pool stats from this process only: %s", exc)
            return [publisher.local_snapshot()], False
        snapshots = cluster["snapshots"]
        if publisher.is_publishing():
            # Our own entry may be an interval old: use the live numbers instead.
            local = publisher.local_snapshot()
            snapshots = [s for s in snapshots if (s.get("host"), s.get("pid")) != (local["host"], local["pid"])]
            snapshots.append(local)
        epoch, resets = cluster["epoch"], cluster["resets"]
        return [aggregate.apply_resets(s, epoch, resets) for s in snapshots], True

    def _budgets(self, snapshots: list[dict[str, Any]], *, refresh: bool = True) -> list[dict[str, Any]]:
        try:
            return health.budgets(snapshots, lambda alias: health.server_limits(alias, refresh=refresh))
        except Exception:  # a budget we cannot compute is left out, not fatal
            logger.exception("computing the server budgets failed")
            return []

    def _build(self, *, per_process: bool) -> dict[str, Any]:
        now = time.time()
        snapshots, redis_ok = self._snapshots()
        result: dict[str, Any] = aggregate.shape(aggregate.merge(snapshots, now=now), now=now)
        budgets = self._budgets(snapshots)
        result["recommendations"] = advisor.advise(result, budgets, tuner.bounds())
        result["processes"] = {"count": len(snapshots), "list": aggregate.process_list(snapshots, now=now)}
        result["source"] = "cluster" if redis_ok else "local"
        result["redis_available"] = redis_ok
        result["generated_at"] = now
        if per_process:
            result["per_process"] = {
                f"{s.get('host')}:{s.get('pid')}": aggregate.shape(aggregate.merge([s], now=now), now=now)
                for s in snapshots
            }
        result["_budgets"] = budgets
        return result

    # -- statistics -------------------------------------------------------------------------------
    def pool_stats(self, *, per_process: bool = False) -> dict[str, Any]:
        """The guide's stats response, aggregated over every live process (see docs/api.md)."""
        result = self._build(per_process=per_process)
        result.pop("_budgets")
        alerts.notify(result["recommendations"])
        return result

    async def get_pool_stats(self, *, per_process: bool = False) -> dict[str, Any]:
        """``pool_stats`` for async code (runs in a worker thread: it does network I/O)."""
        return await sync_to_async(self.pool_stats, thread_sensitive=False)(per_process=per_process)

    def recommendations(self) -> list[dict[str, Any]]:
        """The current recommendations, most severe first (``{pool, issue, suggestion, severity, ...}``)."""
        return self.pool_stats()["recommendations"]

    # -- health ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Every pool checked concurrently within ``HEALTH_CHECK_TIMEOUT``, replica lag, server budget, status."""
        _ensure_django()
        pools = health.run_checks()
        roles = self._database_roles()
        replica_view = health.replica_states()
        for name, check in pools.items():
            if check.get("kind", "postgresql") == "redis" or name.startswith("redis_"):
                check.setdefault("kind", "redis")
                continue
            alias = name.removeprefix("db_")
            check["role"] = roles.get(alias, "primary")
            state = replica_view.get(alias)
            check["replica_lag_seconds"] = state.get("lag_seconds") if state else None
            check["in_rotation"] = state.get("in_rotation") if state else None
        snapshots, _ = self._snapshots()
        budgets = self._budgets(snapshots, refresh=False)  # the checks above refreshed the limits
        primary = health.server_of("default") if "default" in roles else None
        main = next((b for b in budgets if b["server"] == primary), budgets[0] if budgets else None)
        server_budget: dict[str, Any] = {
            "max_connections": None, "reserved": None, "available": None, "configured_total": 0, "processes": 0,
            "ok": None, "server": primary,
        }
        if main is not None:
            server_budget = {key: main[key] for key in ("max_connections", "reserved", "available",
                                                        "configured_total", "processes", "ok", "server")}
        server_budget["servers"] = budgets
        return {
            "status": health.overall_status(pools, [b["ok"] for b in budgets]),
            "checked_at": time.time(),
            "pools": pools,
            "server_budget": server_budget,
        }

    @staticmethod
    def _database_roles() -> dict[str, str]:
        from django.conf import settings

        return {alias: "replica" if (db.get("TEST") or {}).get("MIRROR") else "primary"
                for alias, db in settings.DATABASES.items()}

    # -- sizing ----------------------------------------------------------------------------------------
    def optimize(self, *, apply: bool = False, reason: str = "manual") -> dict[str, Any]:
        """Sizing changes the recommendations call for: ``{"performed": [...], "suggested": [...], ...}``.

        With ``apply`` the changes are made to the live pools of this process and
        broadcast to every other one (``performed`` lists what really changed).
        """
        built = self._build(per_process=False)
        recommendations = built["recommendations"]
        changes = tuner.plan(built, recommendations, built["_budgets"], tuner.bounds())
        suggested = [{"pool": c["pool"], "alias": c["alias"], "setting": setting, "old": c["old"][setting],
                      "new": c["new"][setting], "reasons": c["reasons"]}
                     for c in changes for setting in tuner.SIZING_SETTINGS if c["old"][setting] != c["new"][setting]]
        performed = tuner.apply(changes, reason=reason) if apply else []
        return {"performed": performed, "suggested": suggested, "recommendations": recommendations,
                "source": built["source"]}

    # -- configuration -----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The effective settings of every pool, with every password and secret masked (URLs too)."""
        _ensure_django()
        from django.conf import settings

        databases = {}
        for alias, db in settings.DATABASES.items():
            options = dict(db.get("OPTIONS") or {})
            pool_overrides = options.pop("pool", None)
            databases[alias] = {
                "pool": stats.pool_name_for_alias(alias),
                "engine": db.get("ENGINE"),
                "mode": "pool" if pool_overrides not in (None, False) else "persistent",
                "host": db.get("HOST"), "port": db.get("PORT"), "name": db.get("NAME"), "user": db.get("USER"),
                "password": db.get("PASSWORD"),
                "conn_max_age": db.get("CONN_MAX_AGE"), "conn_health_checks": db.get("CONN_HEALTH_CHECKS"),
                "options": options,
                "pool_settings": self._effective_pool(alias, pool_overrides),
            }
        redis_pools = {name: {"pool": stats.pool_name_for_redis(name), **dict(values)}
                       for name, values in conf.get("REDIS").items()}
        rest = {key: value for key, value in conf.get_config().items() if key not in ("REDIS",)}
        return mask({
            "database_pools": databases,
            "redis_pools": redis_pools,
            "caches": {name: {k: v for k, v in cache.items()} for name, cache in settings.CACHES.items()},
            "settings": rest,
        })

    @staticmethod
    def _effective_pool(alias: str, overrides: Any) -> dict[str, Any] | None:
        if overrides in (None, False):
            return None
        try:
            from .pools.postgres import _config_for, resolve_config

            live = _config_for(alias)
            return live or resolve_config(alias, overrides).as_dict()
        except Exception:  # an alias we cannot resolve shows its raw overrides
            return {**conf.get("DATABASE_POOL"), **(overrides if isinstance(overrides, dict) else {})}

    # -- resets and names ------------------------------------------------------------------------------------
    def pool_names(self) -> list[str]:
        """Every pool name known here: configured aliases and Redis pools, and any with statistics."""
        _ensure_django()
        from django.conf import settings

        names = {stats.pool_name_for_alias(alias) for alias in settings.DATABASES}
        names.update(stats.pool_name_for_redis(name) for name in conf.get("REDIS"))
        names.update(stats.registry.names())
        return sorted(names)

    def reset_stats(self, pool: str | None = None) -> dict[str, Any]:
        """Reset the statistics of ``pool`` (None: every pool) in every process.

        Raises :class:`UnknownPool` for a name no setting or process knows. Without
        Redis only this process is reset (``"scope": "local"``).
        """
        if pool is not None and pool not in self.pool_names():
            raise UnknownPool(f"Unknown pool {pool!r}; known pools: {', '.join(self.pool_names())}.")
        try:
            epoch: int | None = publisher.request_reset(pool)
            scope = "cluster"
        except publisher.RedisUnavailable:
            epoch, scope = None, "local"
        stats.registry.reset(pool)
        if publisher.is_publishing():
            publisher.publish()
        logger.info("pool statistics reset: %s (%s)", pool or "every pool", scope)
        return {"reset": pool or "all", "scope": scope, "epoch": epoch, "reset_at": time.time()}

    # -- metrics (issue 7) -------------------------------------------------------------------------------
    def wait_histograms(self) -> dict[str, dict[str, Any]]:
        """Each pool's cluster-wide wait-time histogram (``buckets`` over ``stats.BUCKET_BOUNDS``,
        ``count``, ``sum``, ``max``), merged like :meth:`pool_stats`; for the Prometheus histogram."""
        snapshots, _ = self._snapshots()
        return {name: pool["histograms"][stats.WAIT_SECONDS] for name, pool in aggregate.merge(snapshots).items()}

    # -- history -----------------------------------------------------------------------------------------
    def history(self, pool: str | None = None, minutes: float = 60) -> dict[str, Any]:
        """The dashboard's time series (see :mod:`connection_pools.history`)."""
        from . import history

        return history.history(pool, minutes)


#: The module-level instance every interface uses.
connection_pool_service = ConnectionPoolService()


def _alerts_interval() -> float:
    return max(float(conf.get("PUBLISH_INTERVAL")) * 6, 10.0)


@background.every(_alerts_interval, name="connection_pools.alerts")
def _watch() -> None:
    # Alerts fire even when nobody polls the API (deduplicated across processes).
    if publisher.is_publishing():
        connection_pool_service.pool_stats()
