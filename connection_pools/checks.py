"""System checks (``manage.py check``) for the app's configuration."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from . import conf


@register()
def check_database_pool_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E004: every pooled alias's OPTIONS["pool"] (and the defaults under it) must resolve.

    The same validation the engine runs when it builds a pool, so a typo is found by
    ``manage.py check`` rather than by the first request.
    """
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    from .conf.pool_options import is_pooled, resolve
    from .pools.postgres import ENGINE

    errors: list[Error] = []
    for alias, db in connections.settings.items():
        if db.get("ENGINE") != ENGINE or not is_pooled(db):
            continue
        try:
            resolve(alias, db, conf.get("DATABASE_POOL"))
        except ImproperlyConfigured as exc:
            errors.append(Error(str(exc), hint="See docs/postgresql-pools.md for both vocabularies.",
                                id="connection_pools.E004"))
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


@register()
def check_psycopg_pool_internals(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E003: an installed psycopg_pool without the internals our pool subclass uses."""
    import psycopg_pool

    from .backends.postgresql import compat

    missing = compat.missing_internals()
    if not missing:
        return []
    return [Error(
        f"psycopg_pool {psycopg_pool.__version__} lacks {', '.join(missing)}, which "
        "connection_pools.backends.postgresql.compat relies on.",
        hint="Install the psycopg-pool version pinned in requirements.txt (>=3.3,<3.4).",
        id="connection_pools.E003",
    )]


@register()
def check_replica_roles(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """connection_pools.W102: an alias that looks like a replica (it mirrors ``default`` in tests) but is
    not in ``REPLICAS["ALIASES"]``, so it is routed and shown as a primary."""
    from django.core.checks import Warning as CheckWarning
    from django.db import connections

    from .conf.aliases import replica_aliases

    listed = set(replica_aliases())
    mirrored = sorted(alias for alias, db in connections.settings.items()
                      if (db.get("TEST") or {}).get("MIRROR") and alias not in listed)
    if not mirrored:
        return []
    return [CheckWarning(
        f"DATABASES {mirrored} mirror another alias in tests but are not in CONNECTION_POOLS['REPLICAS']['ALIASES']: "
        "they get no reads and are shown as primaries.",
        hint="List the replica aliases in CONNECTION_POOLS['REPLICAS']['ALIASES'] (connection_pools.env does it "
             "from DATABASE_REPLICA_URLS).",
        id="connection_pools.W102",
    )]
