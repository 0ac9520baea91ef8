"""What the cluster view means: its server budgets and recommendations (pure but for the clock)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .. import conf
from ..cluster.view import ClusterView
from ..conf.aliases import alias_specs
from ..core.reports import HealthReport, Recommendation, ServerBudget, ServerLimits
from . import server_advice
from .advisor import advise, bounds
from .health import budgets, latest


@dataclass(frozen=True, slots=True)
class Findings:
    """The budgets and recommendations of one view, and the health report they used."""

    budgets: tuple[ServerBudget, ...]
    recommendations: tuple[Recommendation, ...]
    health: HealthReport | None


def limits_of(view: ClusterView, health: HealthReport | None) -> dict[str, ServerLimits]:
    """Each server's limits: from the last health check, else from its last census."""
    found = {census.server: ServerLimits(census.max_connections, census.superuser_reserved or 0,
                                         census.reserved or 0)
             for census in view.census() if census.ok and census.max_connections is not None}
    if health is not None:
        found.update(health.limits)
    return found


def findings(view: ClusterView, *, now: float | None = None) -> Findings:
    """Budgets from the pools and the servers' limits; the pools' and the server tier's recommendations."""
    now = time.time() if now is None else now
    health = latest(view.health)
    found = budgets(view.pools, limits_of(view, health))
    census = conf.get("CENSUS")
    server = server_advice.advise(view.census(), view.pgbouncers(), view.pools, found, alias_specs(),
                                  idle_threshold=float(census["IDLE_IN_TRANSACTION_SECONDS"]),
                                  others_share=float(census["OTHERS_SHARE"]))
    recommendations = tuple(sorted((*advise(view.pools, found, bounds(), now=now), *server),
                                   key=Recommendation.sort_key))
    return Findings(found, recommendations, health)
