"""One resolved model of each database alias: :class:`AliasSpec`, read by every module.

"Is this alias pooled?", "is it a replica?", "what is its pool called?" and "which server is
it on?" are answered here once per settings object, not re-derived by each caller:

* **role** comes from the replica settings (``CONNECTION_POOLS["REPLICAS"]["ALIASES"]``),
  never from the test setting ``TEST["MIRROR"]``;
* **mode** is ``pool`` (our engine with ``OPTIONS["pool"]``), ``persistent``
  (``CONN_MAX_AGE`` > 0 or None, no pool) or ``direct`` (a connection per request);
* **pool_config** is the engine's resolved :class:`~connection_pools.backends.postgresql.options.PoolConfig`
  (or the sentence saying why it does not resolve, which ``manage.py check`` reports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.core.signals import setting_changed

from ..core.runtime import runtime
from . import get as conf_get

if TYPE_CHECKING:
    from .pool_options import PoolConfig

ENGINE = "connection_pools.backends.postgresql"
PRIMARY = "default"

Mode = Literal["pool", "persistent", "direct"]
AliasRole = Literal["primary", "replica"]


@dataclass(frozen=True)
class AliasSpec:
    """Everything the app needs to know about one ``DATABASES`` alias."""

    alias: str
    engine: str
    role: AliasRole
    mode: Mode
    #: ``db_<alias>``: the alias's pool in every output.
    pool_name: str
    host: str
    port: int
    database: str
    user: str
    conn_max_age: float | None
    #: The engine's resolved pool settings (mode ``pool`` only; None when they do not resolve).
    pool_config: PoolConfig | None = None
    #: Why ``pool_config`` is None although the alias asks for a pool.
    config_error: str | None = None
    #: The pooler in front of the server (``"pgbouncer"``: transaction pooling), from ``CONNECTION_POOLS["POOLERS"]``.
    pooler: str | None = None

    @property
    def is_ours(self) -> bool:
        """Uses ``connection_pools.backends.postgresql``."""
        return self.engine == ENGINE

    @property
    def is_postgresql(self) -> bool:
        return "postgresql" in self.engine

    @property
    def server(self) -> str:
        """``host:port`` of the server (budgets add up per server)."""
        return f"{self.host}:{self.port}"


def pool_name_for_alias(alias: str) -> str:
    """``db_<alias>``: the name of a database alias's pool in every output."""
    return f"db_{alias}"


def pool_name_for_redis(name: str) -> str:
    """``redis_<name>``: the name of a Redis pool in every output."""
    return f"redis_{name}"


def replica_aliases() -> list[str]:
    """The replica aliases, in the order ``REPLICAS["ALIASES"]`` lists them."""
    configured = conf_get("REPLICAS").get("ALIASES") or ()
    return [alias for alias in configured if isinstance(alias, str)]


def poolers() -> dict[str, str]:
    """``CONNECTION_POOLS["POOLERS"]``: the pooler in front of each alias's server (alias -> ``"pgbouncer"``)."""
    configured = conf_get("POOLERS") or {}
    return {str(alias): str(kind) for alias, kind in configured.items() if kind} if isinstance(configured, Mapping) \
        else {}


def spec_of(alias: str, settings_dict: Mapping[str, Any]) -> AliasSpec:
    """The spec of an alias from its settings dict (an alias built by hand, outside ``DATABASES``)."""
    return _spec(alias, settings_dict, set(replica_aliases()))


def _spec(alias: str, settings_dict: Mapping[str, Any], replicas: set[str]) -> AliasSpec:
    from django.core.exceptions import ImproperlyConfigured

    from .pool_options import is_pooled, resolve

    engine = str(settings_dict.get("ENGINE") or "")
    max_age = settings_dict.get("CONN_MAX_AGE", 0)
    pooled = engine == ENGINE and is_pooled(settings_dict)
    if pooled:
        mode: Mode = "pool"
    elif max_age is None or (isinstance(max_age, int | float) and max_age > 0):
        mode = "persistent"
    else:
        mode = "direct"
    config, error = None, None
    if pooled:
        try:
            config = resolve(alias, settings_dict, conf_get("DATABASE_POOL"))
        except ImproperlyConfigured as exc:
            error = str(exc)
    port = str(settings_dict.get("PORT") or "")
    return AliasSpec(
        alias=alias, engine=engine, role="replica" if alias in replicas else "primary", mode=mode,
        pool_name=pool_name_for_alias(alias), host=str(settings_dict.get("HOST") or "localhost"),
        port=int(port) if port.isdigit() else 5432, database=str(settings_dict.get("NAME") or ""),
        user=str(settings_dict.get("USER") or ""),
        conn_max_age=None if max_age is None else float(max_age) if isinstance(max_age, int | float) else 0.0,
        pool_config=config, config_error=error, pooler=poolers().get(alias),
    )


# Cached per settings object: keyed by the identity of the DATABASES dict and of each entry.
_cache: dict[str, Any] = {}


def alias_specs() -> Mapping[str, AliasSpec]:
    """Every alias of ``DATABASES``, resolved (cached until the settings change)."""
    from django.db import connections

    settings = connections.settings
    key = (id(settings), tuple((alias, id(entry)) for alias, entry in settings.items()),
           id(conf_get("REPLICAS")), id(conf_get("DATABASE_POOL")), id(conf_get("POOLERS")))
    cached = _cache.get("specs")
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    replicas = set(replica_aliases())
    specs = {alias: _spec(alias, entry, replicas) for alias, entry in settings.items()}
    _cache["specs"] = (key, specs)
    return specs


def spec_for(alias: str) -> AliasSpec:
    """The spec of one alias; ``KeyError`` naming the configured ones for an unknown alias."""
    specs = alias_specs()
    try:
        return specs[alias]
    except KeyError:
        raise KeyError(f"unknown database alias {alias!r} (configured: {', '.join(specs)})") from None


def probe_params(alias: str, *, timeout: float, application_name: str) -> dict[str, Any]:
    """Connection keywords for a short-lived probe of ``alias`` (health, lag, census).

    A copy of the alias's own parameters (for a pooled alias, the pool's), without what
    only makes sense inside Django (cursor factory, adapters), with connect and statement
    timeouts, autocommit, and its own ``application_name``.
    """
    from django.db import connections

    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    params["connect_timeout"] = max(2, math.ceil(timeout))  # libpq's minimum is 2 s; callers keep their deadline
    if poolers().get(alias):
        # Through a PgBouncer: no prepared statements, and no "options" (it refuses that startup parameter).
        params["prepare_threshold"] = None
    else:
        params["options"] = f"{params.get('options', '')} -c statement_timeout={max(int(timeout * 1000), 1)}".strip()
    params["application_name"] = application_name
    params["autocommit"] = True
    return params


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DATABASES", "CONNECTION_POOLS"):
        _cache.clear()


setting_changed.connect(_forget, dispatch_uid="connection_pools.conf.aliases")
runtime.register("conf.aliases", _cache.clear)
