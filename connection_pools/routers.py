"""``DATABASE_ROUTERS = ["connection_pools.routers.ReplicaRouter"]``: the router at its public path.

The code lives in :mod:`connection_pools.routing.router`.
"""

from .routing.router import ReplicaRouter

__all__ = ["ReplicaRouter"]
