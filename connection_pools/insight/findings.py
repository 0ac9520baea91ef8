"""What the cluster view means: its server budgets and recommendations (pure but for the clock)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..cluster.view import ClusterView
from ..core.reports import HealthReport, Recommendation, ServerBudget
from .advisor import advise, bounds
from .health import budgets, latest


@dataclass(frozen=True, slots=True)
class Findings:
    """The budgets and recommendations of one view, and the health report they used."""

    budgets: tuple[ServerBudget, ...]
    recommendations: tuple[Recommendation, ...]
    health: HealthReport | None


def findings(view: ClusterView, *, now: float | None = None) -> Findings:
    """Budgets from the pools and the servers' limits the last health check learned; recommendations."""
    now = time.time() if now is None else now
    health = latest(view.health)
    found = budgets(view.pools, health.limits if health is not None else {})
    return Findings(found, advise(view.pools, found, bounds(), now=now), health)
