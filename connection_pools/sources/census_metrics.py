"""The census's ``/metrics`` families (the parts of :data:`.census.KIND`): each server's connections by
state and owner, its limits and headroom, lock waiters, leaks and the longest sessions, from its last census."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..core.census import ServerCensus, StateCounts
from ..core.figures import MetricFamily, Sample
from ..core.reports import Report

LABELS = ("server", "alias")

FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("server_census_ok", "gauge", "1 when the last census of the server succeeded.", LABELS),
    MetricFamily("server_connections", "gauge", "Client connections on the server, by state.", (*LABELS, "state")),
    MetricFamily("server_owner_connections", "gauge",
                 "Connections on the server by owner: ours, probe, other, replication, background.",
                 (*LABELS, "owner")),
    MetricFamily("server_max_connections", "gauge", "The server's max_connections.", LABELS),
    MetricFamily("server_headroom_connections", "gauge",
                 "Connections the server still accepts (max_connections - reserved - in use).", LABELS),
    MetricFamily("server_blocked_backends", "gauge", "Backends waiting on a lock.", LABELS),
    MetricFamily("server_leaked_connections", "gauge", "Connections of ours that no pool holds.", LABELS),
    MetricFamily("server_longest_query_seconds", "gauge", "Age of the longest running query.", LABELS),
    MetricFamily("server_longest_idle_in_transaction_seconds", "gauge",
                 "Age of the longest idle-in-transaction session.", LABELS),
)


def samples(reports: Sequence[Report]) -> Iterator[Sample]:
    for census in sorted((r for r in reports if isinstance(r, ServerCensus)), key=lambda r: r.name):
        where = (census.server, census.alias)
        yield "server_census_ok", where, 1 if census.ok else 0
        if not census.ok:
            continue
        for state in StateCounts.NAMES:
            yield "server_connections", (*where, state), getattr(census.states, state)
        for owner, count in census.by_kind.items():
            yield "server_owner_connections", (*where, owner), count
        if census.max_connections is not None:
            yield "server_max_connections", where, census.max_connections
        if census.headroom is not None:
            yield "server_headroom_connections", where, census.headroom
        yield "server_blocked_backends", where, census.blocked_total
        yield "server_leaked_connections", where, census.leaks_total
        longest, idle = census.longest_query, census.longest_idle_in_transaction
        yield "server_longest_query_seconds", where, longest.seconds if longest else 0
        yield "server_longest_idle_in_transaction_seconds", where, idle.seconds if idle else 0
