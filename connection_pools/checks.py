"""System checks (``manage.py check``) for the app's configuration."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, register

from . import conf


@register(Tags.database, deploy=False)
def check_database_pool_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E001: the guide's pool settings must be coherent."""
    errors: list[Error] = []
    pool = conf.get("DATABASE_POOL")
    if not isinstance(pool.get("pool_size"), int) or pool["pool_size"] < 1:
        errors.append(
            Error(
                f"CONNECTION_POOLS['DATABASE_POOL']['pool_size'] is {pool.get('pool_size')!r}.",
                hint="Use a whole number >= 1.",
                id="connection_pools.E001",
            )
        )
    if not isinstance(pool.get("max_overflow"), int) or pool["max_overflow"] < 0:
        errors.append(
            Error(
                f"CONNECTION_POOLS['DATABASE_POOL']['max_overflow'] is {pool.get('max_overflow')!r}.",
                hint="Use a whole number >= 0.",
                id="connection_pools.E002",
            )
        )
    return errors


@register()
def check_replica_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """connection_pools.E101: bad REPLICAS values; W101: replicas but no ReplicaRouter."""
    from django.conf import settings

    from . import replicas

    messages: list[Any] = [
        Error(f"CONNECTION_POOLS['REPLICAS']: {problem}", hint="See docs/read-replicas.md.", id="connection_pools.E101")
        for problem in replicas.settings_problems(conf.get("REPLICAS"))
    ]
    routers = [r if isinstance(r, str) else f"{type(r).__module__}.{type(r).__qualname__}"
               for r in getattr(settings, "DATABASE_ROUTERS", [])]
    if not messages and replicas.replica_aliases() and "connection_pools.routers.ReplicaRouter" not in routers:
        from django.core.checks import Warning as CheckWarning

        messages.append(CheckWarning(
            f"Replica aliases {replicas.replica_aliases()} are configured but no read is routed to them.",
            hint="Add 'connection_pools.routers.ReplicaRouter' to DATABASE_ROUTERS.",
            id="connection_pools.W101",
        ))
    return messages


@register(Tags.database)
def check_psycopg_pool_internals(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E003: an installed psycopg_pool without the internals our pool subclass uses."""
    import psycopg_pool

    from .pools import postgres

    missing = postgres.missing_psycopg_pool_internals()
    if not missing:
        return []
    return [Error(
        f"psycopg_pool {psycopg_pool.__version__} lacks {', '.join(missing)}, which "
        "connection_pools.pools.postgres.InstrumentedPool relies on.",
        hint="Install the psycopg-pool version pinned in requirements.txt.",
        id="connection_pools.E003",
    )]
