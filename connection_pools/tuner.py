"""Dynamic sizing: turn sizing recommendations into live pool resizes, within bounds.

* :func:`plan` (pure) computes the new ``pool_size`` / ``max_overflow`` of each
  database pool from the recommendations, clamped to ``TUNER`` bounds
  (``MIN_POOL_SIZE``, ``MAX_POOL_SIZE``, ``MAX_OVERFLOW``) and never beyond the
  server's connection budget across every reporting process.
* :func:`apply` resizes this process's pools (``pools.postgres.resize_pool``, which
  logs and sends ``pool_resized``) and records the sizing in Redis; every other
  process adopts it at its next publish (:func:`honour_sizing`).
* The auto-tuner is a background job, off unless ``TUNER["ENABLED"]``; one process
  per interval acts (a Redis ``SET NX`` on the interval's slot).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from . import background, conf, publisher

logger = logging.getLogger(__name__)

SIZING_SETTINGS = ("pool_size", "max_overflow")


def bounds() -> dict[str, int]:
    """The tuner's bounds from ``CONNECTION_POOLS["TUNER"]``."""
    tuner = conf.get("TUNER")
    return {key: int(tuner[key]) for key in ("MIN_POOL_SIZE", "MAX_POOL_SIZE", "MAX_OVERFLOW")}


def plan(stats: dict[str, Any], recommendations: Iterable[dict[str, Any]], budgets: Iterable[dict[str, Any]],
         limits: dict[str, int]) -> list[dict[str, Any]]:
    """The resizes the recommendations call for: ``[{"pool", "alias", "old": {...}, "new": {...}, "reasons"}]``.

    Pure. Sizes stay within ``limits``; growth is cut back so that the server budget
    (``available`` connections over all processes and aliases) is never exceeded.
    """
    by_pool = {pool["pool"]: (alias, pool) for alias, pool in stats.get("database_pools", {}).items()
               if pool.get("kind") == "postgresql"}
    wanted: dict[str, dict[str, Any]] = {}
    for rec in recommendations:
        if rec.get("setting") not in SIZING_SETTINGS or rec.get("pool") not in by_pool:
            continue
        if not isinstance(rec.get("suggested_value"), int):
            continue
        alias, pool = by_pool[rec["pool"]]
        config = pool.get("config") or {}
        if not isinstance(config.get("pool_size"), int) or not isinstance(config.get("max_overflow"), int):
            continue
        entry = wanted.setdefault(rec["pool"], {
            "pool": rec["pool"], "alias": alias, "processes": int(pool.get("processes", 1)),
            "old": {"pool_size": config["pool_size"], "max_overflow": config["max_overflow"]},
            "new": {"pool_size": config["pool_size"], "max_overflow": config["max_overflow"]}, "reasons": [],
        })
        entry["new"][rec["setting"]] = rec["suggested_value"]
        entry["reasons"].append(rec.get("issue", rec.get("rule", "")))
    budget_by_pool = {}
    for budget in budgets:
        for alias in budget.get("aliases", []):
            budget_by_pool[f"db_{alias}"] = budget
    changes = []
    for entry in wanted.values():
        new = entry["new"]
        new["pool_size"] = min(max(new["pool_size"], limits["MIN_POOL_SIZE"]), limits["MAX_POOL_SIZE"])
        new["max_overflow"] = min(max(new["max_overflow"], 0), limits["MAX_OVERFLOW"])
        _fit_budget(entry, budget_by_pool.get(entry["pool"]))
        if new != entry["old"]:
            changes.append(entry)
    return changes


def _fit_budget(entry: dict[str, Any], budget: dict[str, Any] | None) -> None:
    """Cut growth (overflow first, then size) until the server budget holds; never grow past it."""
    if not budget or not isinstance(budget.get("available"), int):
        return
    old, new, processes = entry["old"], entry["new"], entry["processes"]
    others = budget["configured_total"] - processes * (old["pool_size"] + old["max_overflow"])
    cap = max((budget["available"] - others) // max(processes, 1), 1)  # connections per process for this alias
    if new["pool_size"] + new["max_overflow"] > cap:
        new["max_overflow"] = max(cap - new["pool_size"], 0)
        new["pool_size"] = min(new["pool_size"], cap)


def apply(changes: Iterable[dict[str, Any]], *, reason: str) -> list[dict[str, Any]]:
    """Resize this process's pools and broadcast the sizing; returns one item per setting changed."""
    performed: list[dict[str, Any]] = []
    sizing: dict[str, str] = {}
    for change in changes:
        try:
            from .pools.postgres import resize_pool

            resize_pool(change["alias"], pool_size=change["new"]["pool_size"],
                        max_overflow=change["new"]["max_overflow"], reason=reason)
        except (ImportError, ValueError) as exc:
            logger.warning("tuner: cannot resize %s: %s", change["pool"], exc)
            continue
        logger.info("tuner: %s resized from %s to %s (%s; %s)", change["pool"], change["old"], change["new"],
                    reason, "; ".join(change.get("reasons", [])))
        sizing[change["alias"]] = json.dumps({**change["new"], "at": time.time()})
        for setting in SIZING_SETTINGS:
            if change["old"][setting] != change["new"][setting]:
                performed.append({"pool": change["pool"], "alias": change["alias"], "setting": setting,
                                  "old": change["old"][setting], "new": change["new"][setting], "reason": reason})
    if sizing:
        try:
            publisher.call(lambda c: _store_sizing(c, sizing))
        except publisher.RedisUnavailable as exc:
            logger.warning("tuner: resized this process only; Redis unavailable for the others (%s)", exc)
    return performed


def _store_sizing(client: Any, sizing: dict[str, str]) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.hset(publisher.key("sizing"), mapping=sizing)
    pipe.expire(publisher.key("sizing"), math.ceil(publisher.ttl()) * 4 + 60)
    pipe.execute()


def honour_sizing(sizing: dict[str, str]) -> list[dict[str, Any]]:
    """Adopt the cluster sizing in Redis for the pools of this process that differ (from the publisher)."""
    if not sizing:
        return []
    try:
        from .pools.postgres import get_pool, resize_pool
    except ImportError:
        return []
    done = []
    for alias, raw in sizing.items():
        try:
            wanted = json.loads(raw)
            pool = get_pool(alias)
            if pool is None:
                continue
            current = {"pool_size": pool.min_size, "max_overflow": pool.max_size - pool.min_size}
            target = {"pool_size": int(wanted["pool_size"]), "max_overflow": int(wanted["max_overflow"])}
            if current != target:
                done.append(resize_pool(alias, reason="cluster sizing", **target))
        except Exception:  # one bad entry must not stop publishing
            logger.exception("tuner: cannot adopt the sizing of %s", alias)
    return done


def _interval() -> float:
    return max(float(conf.get("TUNER")["INTERVAL"]), 1.0)


@background.every(_interval, name="connection_pools.tuner")
def auto_tune() -> list[dict[str, Any]]:
    """The background job: when ``TUNER["ENABLED"]``, apply the sizing recommendations (one process per interval)."""
    if not conf.get("TUNER")["ENABLED"]:
        return []
    slot = int(time.time() // _interval())
    try:
        claimed = publisher.call(lambda c: c.set(publisher.key("tuner", str(slot)), 1, nx=True,
                                                 ex=math.ceil(_interval()) * 2))
    except publisher.RedisUnavailable:
        claimed = True  # alone: tune this process
    if not claimed:
        return []
    from .service import connection_pool_service

    return connection_pool_service.optimize(apply=True, reason="auto-tuner")["performed"]
