"""Dynamic sizing: turn sizing recommendations into live pool resizes, within bounds.

* :func:`plan` (pure) computes the new ``pool_size`` / ``max_overflow`` of each database
  pool from the recommendations, clamped to the ``TUNER`` bounds (``MIN_POOL_SIZE``,
  ``MAX_POOL_SIZE``, ``MAX_OVERFLOW``) and never beyond the server's connection budget
  across every reporting process.
* :func:`apply` resizes this process's pools and records the sizing in the cluster store;
  every process adopts it in its :func:`adopt_job`.
* :func:`auto_tune_job` (off unless ``TUNER["ENABLED"]``) applies the plan, one process per
  interval for the whole cluster.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .. import conf
from ..cluster.store import StoreUnavailable, store
from ..core.reports import Recommendation, ServerBudget
from ..core.snapshots import PoolSnapshot
from .advisor import Bounds

logger = logging.getLogger(__name__)

SIZING_SETTINGS = ("pool_size", "max_overflow")


@dataclass(frozen=True, slots=True)
class Sizing:
    """Per-process ``pool_size`` and ``max_overflow`` of one pool."""

    pool_size: int
    max_overflow: int


@dataclass(frozen=True, slots=True)
class SizingChange:
    """One pool's resize: from ``old`` to ``new``, and why."""

    pool: str
    alias: str
    processes: int
    old: Sizing
    new: Sizing
    reasons: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Performed:
    """One setting one process changed."""

    pool: str
    alias: str
    setting: str
    old: int
    new: int
    reason: str


def _sizing(pool: PoolSnapshot) -> Sizing | None:
    size, overflow = pool.config.get("pool_size"), pool.config.get("max_overflow")
    if isinstance(size, bool) or isinstance(overflow, bool):
        return None
    if not isinstance(size, int) or not isinstance(overflow, int):
        return None
    return Sizing(size, overflow)


def plan(pools: Iterable[PoolSnapshot], recommendations: Iterable[Recommendation],
         budgets: Iterable[ServerBudget], limits: Bounds) -> tuple[SizingChange, ...]:
    """The resizes the recommendations call for. Pure.

    Sizes stay within ``limits``; growth is cut back so that the server budget (``available``
    connections over all processes and aliases) is never exceeded.
    """
    by_name = {pool.name: pool for pool in pools if pool.kind == "postgresql"}
    wanted: dict[str, SizingChange] = {}
    for rec in recommendations:
        pool = by_name.get(rec.pool)
        if rec.setting not in SIZING_SETTINGS or pool is None:
            continue
        if isinstance(rec.suggested_value, bool) or not isinstance(rec.suggested_value, int):
            continue
        current = _sizing(pool)
        if current is None:
            continue
        change = wanted.get(rec.pool) or SizingChange(rec.pool, pool.alias, pool.processes, current, current)
        change = replace(change, new=replace(change.new, **{rec.setting: rec.suggested_value}),
                         reasons=(*change.reasons, rec.issue or rec.rule))
        wanted[rec.pool] = change
    budget_of = {f"db_{alias}": budget for budget in budgets for alias in budget.aliases}
    changes = []
    for change in wanted.values():
        new = Sizing(min(max(change.new.pool_size, limits["MIN_POOL_SIZE"]), limits["MAX_POOL_SIZE"]),
                     min(max(change.new.max_overflow, 0), limits["MAX_OVERFLOW"]))
        new = _fit_budget(change, new, budget_of.get(change.pool))
        if new != change.old:
            changes.append(replace(change, new=new))
    return tuple(changes)


def _fit_budget(change: SizingChange, new: Sizing, budget: ServerBudget | None) -> Sizing:
    """Cut growth (overflow first, then size) until the server budget holds; never grow past it."""
    if budget is None or budget.available is None:
        return new
    processes = max(change.processes, 1)
    others = budget.configured_total - processes * (change.old.pool_size + change.old.max_overflow)
    cap = max((budget.available - others) // processes, 1)  # connections per process for this alias
    if new.pool_size + new.max_overflow > cap:
        return Sizing(min(new.pool_size, cap), max(cap - new.pool_size, 0))
    return new


def apply(changes: Iterable[SizingChange], *, reason: str) -> tuple[Performed, ...]:
    """Resize this process's pools and record the sizing for the others; one item per setting changed."""
    from ..backends.postgresql.live import resize_pool

    performed: list[Performed] = []
    sizing: dict[str, str] = {}
    for change in changes:
        try:
            resize_pool(change.alias, pool_size=change.new.pool_size, max_overflow=change.new.max_overflow,
                        reason=reason)
        except ValueError as exc:
            logger.warning("tuner: cannot resize %s: %s", change.pool, exc)
            continue
        logger.info("tuner: %s resized from %s to %s (%s; %s)", change.pool, change.old, change.new, reason,
                    "; ".join(change.reasons))
        sizing[change.alias] = json.dumps({"pool_size": change.new.pool_size,
                                           "max_overflow": change.new.max_overflow, "at": time.time()})
        for setting in SIZING_SETTINGS:
            old, new = getattr(change.old, setting), getattr(change.new, setting)
            if old != new:
                performed.append(Performed(change.pool, change.alias, setting, old, new, reason))
    if sizing:
        try:
            store.store_sizing(sizing)
        except StoreUnavailable as exc:
            logger.warning("tuner: resized this process only; Redis unavailable for the others (%s)", exc)
    return tuple(performed)


def adopt(sizing: Mapping[str, str]) -> list[dict[str, object]]:
    """Resize this process's pools to the cluster's sizing where they differ."""
    from ..backends.postgresql.live import get_pool, resize_pool

    done = []
    for alias, raw in sizing.items():
        try:
            wanted = json.loads(raw)
            pool = get_pool(alias)
            if pool is None:
                continue
            target = Sizing(int(wanted["pool_size"]), int(wanted["max_overflow"]))
            if Sizing(pool.min_size, pool.max_size - pool.min_size) != target:
                done.append(resize_pool(alias, reason="cluster sizing", pool_size=target.pool_size,
                                        max_overflow=target.max_overflow))
        except Exception:  # one bad entry must not stop the others
            logger.exception("tuner: cannot adopt the sizing of %s", alias)
    return done


def interval() -> float:
    return max(float(conf.get("TUNER")["INTERVAL"]), 1.0)


def adopt_job() -> list[dict[str, object]]:
    """The background job of every server process: adopt the sizing another process applied."""
    try:
        sizing = store.sizing()
    except StoreUnavailable:
        return []
    return adopt(sizing) if sizing else []


def auto_tune_job() -> tuple[Performed, ...]:
    """The background job: when ``TUNER["ENABLED"]``, apply the sizing recommendations (one process per interval)."""
    if not conf.get("TUNER")["ENABLED"]:
        return ()
    try:
        claimed = store.claim_slot("tuner", int(time.time() // interval()), ttl=interval() * 2)
    except StoreUnavailable:
        claimed = True  # alone: tune this process
    if not claimed:
        return ()
    from ..cluster.view import read
    from .advisor import bounds
    from .findings import findings

    view = read()
    found = findings(view)
    return apply(plan(view.pools, found.recommendations, found.budgets, bounds()), reason="auto-tuner")
