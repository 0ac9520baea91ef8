"""Merge per-process snapshots into one cluster view, and shape it like the guide's response.

Pure functions of snapshots (see :mod:`connection_pools.stats` for their shape):

* counters and gauges are **summed** over processes (``pool_size``, ``max_size`` and
  ``max_connections`` in the response are therefore the cluster's capacity, while
  ``config`` keeps the per-process settings);
* peaks take the **max** (``peak_connections`` is never below ``active_connections``);
  ``process_peak`` is the largest peak of any one process (what sizing rules compare
  with the per-process ``pool_size``);
* wait/hold histograms are **merged** bucket by bucket, then summarized;
* ``replica_lag_seconds`` takes the worst (max) value, ``in_rotation`` is true only
  when every process has the replica in rotation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from . import stats

#: Gauges whose cluster value is the largest of the processes', not their sum.
MAX_GAUGES = frozenset({"replica_lag_seconds", "oldest_age_seconds", "mean_age_seconds", "out_of_rotation_seconds",
                        "lag_bytes"})
DATABASE_KINDS = ("postgresql", "persistent")
POOL_CONFIG_KEYS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "pool_use_lifo")
#: A recycle rate over a window shorter than this is noise (seconds).
MIN_RATE_WINDOW = 60.0


# --- resets ---------------------------------------------------------------------------------
def apply_resets(snapshot: dict[str, Any], epoch: int, resets: dict[int, str]) -> dict[str, Any]:
    """Zero what a process had counted before a reset it has not honoured yet.

    A snapshot published at epoch ``e`` that is older than the current ``epoch`` is
    shown as reset for the pools reset in ``(e, epoch]``: counters, histograms and
    peaks zeroed, live gauges kept. Returns a new dict (or the same one when nothing applies).
    """
    seen = int(snapshot.get("epoch") or 0)
    if seen >= epoch:
        return snapshot
    names = {resets.get(number) for number in range(seen + 1, epoch + 1)}
    everything = None in names or "*" in names
    pools = {}
    for name, pool in snapshot.get("pools", {}).items():
        if everything or name in names:
            active = int(pool.get("gauges", {}).get(stats.ACTIVE, 0) or 0)
            pool = {
                **pool,
                "counters": dict.fromkeys(pool.get("counters", {}), 0),
                "peaks": {stats.ACTIVE: active},
                "histograms": {stats.WAIT_SECONDS: stats.empty_histogram(),
                               stats.HOLD_SECONDS: stats.empty_histogram()},
                "reset_at": time.time(),
            }
        pools[name] = pool
    return {**snapshot, "pools": pools}


# --- merging ----------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def merge_pool(parts: list[dict[str, Any]], *, now: float | None = None) -> dict[str, Any]:
    """Merge the snapshots of one pool from several processes into one (same shape, plus extras)."""
    now = time.time() if now is None else now
    first = parts[0]
    counters: dict[str, int] = {}
    gauges: dict[str, Any] = {}
    flags: dict[str, list[bool]] = {}
    peak = 0
    recycle_rate = 0.0
    for part in parts:
        for name, value in part.get("counters", {}).items():
            counters[name] = counters.get(name, 0) + int(value or 0)
        for name, value in part.get("gauges", {}).items():
            if isinstance(value, bool):
                flags.setdefault(name, []).append(value)
            elif value is None:
                gauges.setdefault(name, None)
            elif _number(value):
                if name in MAX_GAUGES:
                    gauges[name] = max(value, gauges.get(name) if gauges.get(name) is not None else value)
                else:
                    gauges[name] = (gauges.get(name) or 0) + value
        peak = max(peak, int(part.get("peaks", {}).get(stats.ACTIVE, 0) or 0))
        window = max(now - float(part.get("reset_at") or now), MIN_RATE_WINDOW)
        recycle_rate += int(part.get("counters", {}).get(stats.RECYCLED, 0) or 0) * 60.0 / window
    for name, values in flags.items():
        gauges[name] = all(values)
    histograms = {
        key: stats.merge_histograms(part.get("histograms", {}).get(key) or stats.empty_histogram() for part in parts)
        for key in (stats.WAIT_SECONDS, stats.HOLD_SECONDS)
    }
    config = next((part["config"] for part in parts if part.get("config")), {})
    return {
        "name": first["name"],
        "kind": first.get("kind"),
        "alias": first.get("alias"),
        "role": first.get("role"),
        "config": dict(config),
        "gauges": gauges,
        "counters": counters,
        "peaks": {stats.ACTIVE: peak},
        "histograms": histograms,
        "reset_at": min(float(part.get("reset_at") or now) for part in parts),
        "processes": len(parts),
        "recycle_rate_per_minute": recycle_rate,
    }


def merge(snapshots: Iterable[dict[str, Any]], *, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Merge process snapshots into ``{pool_name: merged pool}``."""
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for snapshot in snapshots:
        for name, pool in snapshot.get("pools", {}).items():
            by_pool.setdefault(name, []).append(pool)
    return {name: merge_pool(parts, now=now) for name, parts in sorted(by_pool.items())}


# --- shaping ------------------------------------------------------------------------------------
def _int(value: Any) -> int:
    return int(value) if _number(value) else 0


def shape_database_pool(pool: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """One ``database_pools.<alias>`` entry of the guide's response from a merged pool."""
    now = time.time() if now is None else now
    gauges, counters, config = pool["gauges"], pool["counters"], pool.get("config", {})
    processes = int(pool.get("processes", 1))
    active = _int(gauges.get(stats.ACTIVE))
    if pool.get("kind") == "postgresql":
        pool_size = _int(gauges.get(stats.MIN_SIZE)) or _int(config.get("pool_size")) * processes
        max_size = _int(gauges.get(stats.MAX_SIZE)) or (
            (_int(config.get("pool_size")) + _int(config.get("max_overflow"))) * processes)
        shown_config = {key: config.get(key) for key in POOL_CONFIG_KEYS}
    else:  # persistent connections: one per thread, no fixed size
        pool_size = max_size = _int(gauges.get(stats.SIZE))
        shown_config = dict(config)
    wait = pool["histograms"][stats.WAIT_SECONDS]
    lag = gauges.get("replica_lag_seconds")
    return {
        "pool": pool["name"],
        "kind": pool.get("kind"),
        "role": pool.get("role") or "primary",
        "active_connections": active,
        "peak_connections": max(_int(pool["peaks"].get(stats.ACTIVE)), active),
        "process_peak": _int(pool["peaks"].get(stats.ACTIVE)),
        "connections_created": _int(counters.get(stats.CONNECTIONS_CREATED)),
        "connections_closed": _int(counters.get(stats.CONNECTIONS_CLOSED)),
        "average_wait_time": wait["sum"] / wait["count"] if wait["count"] else 0.0,
        "pool_size": pool_size,
        "overflow": _int(gauges.get(stats.OVERFLOW_IN_USE)),
        "max_overflow": max(max_size - pool_size, 0),
        "max_size": max_size,
        "size": _int(gauges.get(stats.SIZE)),
        "available_connections": _int(gauges.get(stats.AVAILABLE)),
        "waiting": _int(gauges.get(stats.WAITING)),
        "checkouts": _int(counters.get(stats.CHECKOUTS)),
        "connection_errors": _int(counters.get(stats.CONNECTION_ERRORS)),
        "timeouts": _int(counters.get(stats.TIMEOUTS)),
        "recycled": _int(counters.get(stats.RECYCLED)),
        "recycle_rate_per_minute": round(float(pool.get("recycle_rate_per_minute", 0.0)), 4),
        "pre_ping_failures": _int(counters.get(stats.PRE_PING_FAILURES)),
        "long_holds": _int(counters.get(stats.LONG_HOLDS)),
        "fallbacks": _int(counters.get(stats.FALLBACKS)),
        "wait_time": stats.summarize_histogram(wait),
        "hold_time": stats.summarize_histogram(pool["histograms"][stats.HOLD_SECONDS]),
        "replica_lag_seconds": float(lag) if _number(lag) else None,
        "in_rotation": gauges.get("in_rotation") if isinstance(gauges.get("in_rotation"), bool) else None,
        "processes": processes,
        "window_seconds": round(max(now - float(pool.get("reset_at") or now), 0.0), 3),
        "config": shown_config,
    }


def shape_redis_pool(pool: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """One ``redis_pools.<name>`` entry of the guide's response from a merged pool."""
    now = time.time() if now is None else now
    gauges, counters = pool["gauges"], pool["counters"]
    in_use = _int(gauges.get(stats.ACTIVE))
    return {
        "pool": pool["name"],
        "kind": "redis",
        "in_use_connections": in_use,
        "available_connections": _int(gauges.get(stats.AVAILABLE)),
        "created_connections": _int(counters.get(stats.CONNECTIONS_CREATED)),
        "closed_connections": _int(counters.get(stats.CONNECTIONS_CLOSED)),
        "max_connections": _int(gauges.get(stats.MAX_SIZE)),
        "peak_in_use": max(_int(pool["peaks"].get(stats.ACTIVE)), in_use),
        "process_peak": _int(pool["peaks"].get(stats.ACTIVE)),
        "waiting": _int(gauges.get(stats.WAITING)),
        "checkouts": _int(counters.get(stats.CHECKOUTS)),
        "connection_errors": _int(counters.get(stats.CONNECTION_ERRORS)),
        "timeouts": _int(counters.get(stats.TIMEOUTS)),
        "wait_time": stats.summarize_histogram(pool["histograms"][stats.WAIT_SECONDS]),
        "processes": int(pool.get("processes", 1)),
        "window_seconds": round(max(now - float(pool.get("reset_at") or now), 0.0), 3),
        "config": dict(pool.get("config", {})),
    }


def response_key(pool: dict[str, Any]) -> str:
    """``<alias>`` for a database pool, ``<name>`` for a Redis pool (the guide's grouping keys)."""
    name = pool["name"]
    if pool.get("alias"):
        return str(pool["alias"])
    return name.split("_", 1)[1] if "_" in name else name


def shape(merged: dict[str, dict[str, Any]], *, now: float | None = None) -> dict[str, dict[str, Any]]:
    """``{"database_pools": {...}, "redis_pools": {...}}`` from merged pools."""
    database: dict[str, Any] = {}
    redis_pools: dict[str, Any] = {}
    for pool in merged.values():
        if pool.get("kind") in DATABASE_KINDS:
            database[response_key(pool)] = shape_database_pool(pool, now=now)
        elif pool.get("kind") == "redis":
            redis_pools[response_key(pool)] = shape_redis_pool(pool, now=now)
    return {"database_pools": database, "redis_pools": redis_pools}


def process_list(snapshots: Iterable[dict[str, Any]], *, now: float | None = None) -> list[dict[str, Any]]:
    """``[{"host", "pid", "age_seconds", "epoch"}]``: who reported, how old each snapshot is, and the
    reset epoch each process has honoured."""
    now = time.time() if now is None else now
    return sorted(
        ({"host": s.get("host"), "pid": s.get("pid"),
          "age_seconds": round(max(now - float(s.get("taken_at", now)), 0.0), 3),
          "epoch": int(s.get("epoch") or 0)} for s in snapshots),
        key=lambda p: (str(p["host"]), int(p["pid"] or 0)),
    )
