"""A bounded time series of each pool's key figures, kept in Redis for the charts.

Every ``HISTORY_INTERVAL`` seconds one process of the whole cluster (whichever wins
a ``SET NX EX`` on the current time slot) reads the cluster aggregate from the
service and appends one point per pool to a Redis sorted set scored by time.
Points older than ``HISTORY_SECONDS`` are trimmed at each sample, the set is
also capped by count and expires when nobody samples any more, so memory is
bounded whatever happens. Every process reads the same series.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any

import redis

from . import background, conf, publisher

logger = logging.getLogger(__name__)

#: The figures kept per point (besides ``t``), in the order the API documents them.
POINT_FIELDS: tuple[str, ...] = (
    "active", "size", "max_size", "available", "waiting", "wait_p95", "errors", "timeouts", "replica_lag_seconds",
)  # fmt: skip



class HistoryUnavailable(Exception):
    """Redis cannot be reached: there is no shared history to read or write."""


def _key(*parts: str) -> str:
    return ":".join((conf.get("KEY_PREFIX"), "history", *parts))


def interval() -> float:
    """Seconds between two points (``CONNECTION_POOLS["HISTORY_INTERVAL"]``)."""
    return max(float(conf.get("HISTORY_INTERVAL")), 0.5)


def retention() -> float:
    """Seconds of history kept (``CONNECTION_POOLS["HISTORY_SECONDS"]``)."""
    return max(float(conf.get("HISTORY_SECONDS")), interval())


def max_points() -> int:
    """The most points one pool's series may hold (retention / interval, with slack for clock jitter)."""
    return math.ceil(retention() / interval()) + 10


def points_from_stats(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One history point per pool (without ``t``) from a ``pool_stats()`` aggregate.

    A pure function of the aggregate: database pools report ``pool_size`` as size,
    Redis pools their ``max_connections`` (they have no separate overflow).
    """
    points: dict[str, dict[str, Any]] = {}
    for pool in stats.get("database_pools", {}).values():
        points[pool["pool"]] = {
            "active": pool.get("active_connections", 0),
            "size": pool.get("pool_size", 0),
            "max_size": pool.get("max_size", 0),
            "available": pool.get("available_connections", 0),
            "waiting": pool.get("waiting", 0),
            "wait_p95": (pool.get("wait_time") or {}).get("p95", 0.0),
            "errors": pool.get("connection_errors", 0),
            "timeouts": pool.get("timeouts", 0),
            "replica_lag_seconds": pool.get("replica_lag_seconds"),
        }
    for pool in stats.get("redis_pools", {}).values():
        points[pool["pool"]] = {
            "active": pool.get("in_use_connections", 0),
            "size": pool.get("max_connections", 0),
            "max_size": pool.get("max_connections", 0),
            "available": pool.get("available_connections", 0),
            "waiting": pool.get("waiting", 0),
            "wait_p95": (pool.get("wait_time") or {}).get("p95", 0.0),
            "errors": pool.get("connection_errors", 0),
            "timeouts": pool.get("timeouts", 0),
            "replica_lag_seconds": None,
        }
    return points


def record(points: dict[str, dict[str, Any]], *, now: float | None = None) -> None:
    """Append one point per pool at time ``now`` and trim every touched series."""
    now = time.time() if now is None else now
    oldest = now - retention()
    cap = max_points()
    ttl = math.ceil(retention()) + 60

    def write(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for pool, values in points.items():
            key = _key("pool", pool)
            point = {"t": round(now, 3), **{field: values.get(field) for field in POINT_FIELDS}}
            pipe.zadd(key, {json.dumps(point, separators=(",", ":")): now})
            pipe.zremrangebyscore(key, "-inf", f"({oldest}")
            pipe.zremrangebyrank(key, 0, -cap - 1)  # keep the newest `cap` points
            pipe.expire(key, ttl)
            pipe.sadd(_key("pools"), pool)
        pipe.expire(_key("pools"), ttl)
        pipe.execute()

    try:
        publisher.call(write)
    except publisher.RedisUnavailable as exc:
        raise HistoryUnavailable(str(exc)) from exc


def claim_slot(now: float) -> bool:
    """True for the first caller in the whole cluster in the time slot of ``now`` (``SET NX EX``)."""
    step = interval()
    slot = int(now // step)
    ttl = max(math.ceil(step * 3), 2)
    return bool(publisher.call(lambda client: client.set(_key("slot", str(slot)), os.getpid(), nx=True, ex=ttl)))


def sample(*, now: float | None = None) -> bool:
    """Take this interval's sample unless another process already did; True when this call did.

    The claim is a ``SET NX EX`` on the current time slot, so however many processes
    run the job, each slot gets at most one point.
    """
    now = time.time() if now is None else now
    try:
        if not claim_slot(now):
            return False
        from .service import connection_pool_service

        stats = connection_pool_service.pool_stats()
        if not stats.get("redis_available", True) or not stats.get("processes", {}).get("count", 1):
            # Nothing shared to sample (Redis gone, or no process publishing yet).
            return False
        record(points_from_stats(stats), now=now)
        return True
    except (publisher.RedisUnavailable, HistoryUnavailable) as exc:
        logger.debug("history sample skipped: Redis unavailable (%s)", exc)
        return False


def history(pool: str | None = None, minutes: float = 60) -> dict[str, Any]:
    """The series of one pool (or every pool) over the last ``minutes``.

    ``{"interval": seconds, "retention_seconds": ..., "series": {"db_default": [{"t": ..., "active": ...}, ...]}}``,
    points oldest first. Raises :class:`HistoryUnavailable` when Redis cannot be reached
    and ``ValueError`` for a non-positive or non-finite ``minutes``.
    """
    minutes = float(minutes)
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError("minutes must be a positive number")
    since = time.time() - min(minutes * 60.0, retention())

    def read(client: redis.Redis) -> tuple[list[str], list[list[str]]]:
        names = [pool] if pool is not None else sorted(publisher.text(client.smembers(_key("pools"))))
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.zrangebyscore(_key("pool", name), since, "+inf")
        return names, pipe.execute()

    try:
        names, results = publisher.call(read)
    except publisher.RedisUnavailable as exc:
        raise HistoryUnavailable(f"Redis is unreachable ({exc})") from exc
    series = {name: [json.loads(raw) for raw in rows] for name, rows in zip(names, results, strict=True)}
    return {"interval": interval(), "retention_seconds": retention(), "series": series}


def clear() -> None:
    """Delete every stored point (tests, and a fresh start after a config change)."""
    def wipe(client: redis.Redis) -> None:
        keys = [_key("pool", name) for name in publisher.text(client.smembers(_key("pools")))]
        client.delete(*keys, _key("pools"))

    publisher.call(wipe)


@background.every(interval, name="connection_pools.history")
def _sample_job() -> None:
    sample()
