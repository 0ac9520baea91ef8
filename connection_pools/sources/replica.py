"""What every source of one database alias shares, and what the replica set adds to a replica's
snapshot whatever kind of pool it is."""

from __future__ import annotations

from dataclasses import replace

from ..conf.aliases import AliasSpec
from ..core.snapshots import PoolSnapshot


class AliasSource:
    """A source bound to one ``DATABASES`` alias (its name, role and replica state come from the spec)."""

    kind = ""

    def __init__(self, spec: AliasSpec) -> None:
        self.spec = spec
        self.name = spec.pool_name
        self.role = spec.role
        self.alias = spec.alias

    def finish(self, snapshot: PoolSnapshot) -> PoolSnapshot:
        """A replica's snapshot gets its lag, rotation and fallbacks."""
        return with_replica(snapshot) if self.role == "replica" else snapshot

    def reset_replica(self) -> None:
        """A replica's counts are the replica set's: reset them too."""
        if self.role == "replica":
            from ..routing.replicas import reset_counts

            reset_counts(self.alias)


def with_replica(snapshot: PoolSnapshot) -> PoolSnapshot:
    """``snapshot`` with the replica's lag, rotation, fallbacks and rotation exits in this process."""
    from ..routing.replicas import reading

    replica = reading(snapshot.alias)
    gauges = replace(snapshot.gauges, replica_lag_seconds=replica.lag_seconds, lag_bytes=replica.lag_bytes,
                     in_rotation=replica.in_rotation, out_of_rotation_seconds=replica.out_of_rotation_seconds)
    counters = replace(snapshot.counters, fallbacks=replica.fallbacks, rotation_exits=replica.rotation_exits)
    return replace(snapshot, gauges=gauges, counters=counters)
