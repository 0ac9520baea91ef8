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
