"""The example project's own servers: the ports ``scripts/devservices`` starts them on (its defaults),
used when the environment names no others. The library itself has no default server: an adopter's
project says where its databases and Redis are (docs/adopting.md)."""

from __future__ import annotations

import os

DEFAULTS = {
    "DATABASE_URL": "postgres://pools:pools@127.0.0.1:55432/pools",
    "DATABASE_REPLICA_URLS": "postgres://pools:pools@127.0.0.1:55433/pools",
    "REDIS_URL": "redis://127.0.0.1:56379/0",
    "REDIS_CACHE_URL": "redis://127.0.0.1:56379/1",
}


def environ() -> dict[str, str]:
    """The environment, with the development servers for what it leaves unset."""
    return {**DEFAULTS, **os.environ}
