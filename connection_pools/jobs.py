"""Every background job of the app, registered in this one place when the app starts.

Each server process runs them in one background thread (:mod:`connection_pools.core.jobs`),
started by its first request or its worker's ``post_fork`` hook, never in a management
command. Reads elsewhere have no side effects: publishing, the rollup, health checks,
alerts, history, resets, sizing and the server census all happen here.
"""

from __future__ import annotations

from . import conf
from .core import jobs


def _publish_interval() -> float:
    return max(float(conf.get("PUBLISH_INTERVAL")), 0.05)


def _alerts_interval() -> float:
    return max(float(conf.get("PUBLISH_INTERVAL")) * 6, 10.0)


def register() -> None:
    """Register every job (idempotent: a second call replaces the first)."""
    from .backends.postgresql import live as postgres
    from .cluster import publish, rollup
    from .insight import alerts, health, history, server_tier, tuner
    from .routing import replicas

    jobs.every(_publish_interval, "connection_pools.publish")(publish.publish)
    jobs.every(_publish_interval, "connection_pools.rollup")(rollup.roll_up)
    jobs.every(_publish_interval, "connection_pools.sizing")(tuner.adopt_job)
    jobs.every(replicas.sample_interval, "connection_pools.replica_lag")(replicas.sample_all)
    jobs.every(postgres.long_hold_interval, "connection_pools.long_holds")(postgres.report_long_holds)
    jobs.every(health.interval, "connection_pools.health")(health.job)
    jobs.every(server_tier.interval, "connection_pools.server_tier")(server_tier.job)
    jobs.every(_alerts_interval, "connection_pools.alerts")(alerts.job)
    jobs.every(history.interval, "connection_pools.history")(history.sample)
    jobs.every(tuner.interval, "connection_pools.tuner")(tuner.auto_tune_job)
