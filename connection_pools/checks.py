"""System checks (``manage.py check``) for the app's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning

from . import conf
from .sources.kinds import Registration


def _whole(value: Any, minimum: int, maximum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and minimum <= value <= maximum


@register()
def check_persistent_under_asgi(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connection_pools.E301: persistent connections leak under ASGI (see :mod:`.conf.serving`)."""
    from .conf.serving import persistent_under_asgi

    return persistent_under_asgi()


# Not tagged ``database``: it reads settings only, and Django 6.1's run_checks() leaves database-tagged
# checks out unless databases are named.
@register()
def check_database_pool_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E001/E002: the guide's pool sizes must be whole numbers within bounds."""
    errors: list[Error] = []
    pool = conf.get("DATABASE_POOL")
    most = conf.MAX_POOL_CONNECTIONS
    for key, minimum, check_id in (("pool_size", 1, "connection_pools.E001"),
                                   ("max_overflow", 0, "connection_pools.E002")):
        if not _whole(pool.get(key), minimum, most):
            errors.append(Error(
                f"CONNECTION_POOLS['DATABASE_POOL'][{key!r}] is {pool.get(key)!r}.",
                hint=f"Use a whole number from {minimum} to {most} (connections per process and alias).",
                id=check_id,
            ))
    return errors


@register()
def check_pool_options(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E004: every pooled alias's OPTIONS["pool"] (and the defaults under it) must resolve.

    The same validation the engine runs when it builds a pool, so a typo is found by
    ``manage.py check`` rather than by the first request.
    """
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    from .backends.postgresql.live import ENGINE
    from .conf.pool_options import is_pooled, resolve

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
def check_tuner_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E005: the tuner's bounds must be whole numbers, minimum at most maximum."""
    tuner = conf.get("TUNER")
    most = conf.MAX_POOL_CONNECTIONS
    problems = [
        f"{key} is {tuner.get(key)!r}; expected a whole number from {minimum} to {most}."
        for key, minimum in (("MIN_POOL_SIZE", 1), ("MAX_POOL_SIZE", 1), ("MAX_OVERFLOW", 0))
        if not _whole(tuner.get(key), minimum, most)
    ]
    if not problems and tuner["MIN_POOL_SIZE"] > tuner["MAX_POOL_SIZE"]:
        problems.append(f"MIN_POOL_SIZE ({tuner['MIN_POOL_SIZE']}) is above MAX_POOL_SIZE ({tuner['MAX_POOL_SIZE']}).")
    return [Error(f"CONNECTION_POOLS['TUNER']: {problem}", hint="See docs/api.md (tuner).", id="connection_pools.E005")
            for problem in problems]


@dataclass
class ServerDemand:
    """The most connections one process's pools may open to one PostgreSQL server."""

    server: str
    aliases: list[str] = field(default_factory=list)
    per_process: int = 0


def pooled_demand() -> dict[str, ServerDemand]:
    """``pool_size + max_overflow`` of every pooled alias, summed per server (``host:port``)."""
    from .conf.aliases import alias_specs

    demand: dict[str, ServerDemand] = {}
    for spec in alias_specs().values():
        if spec.mode != "pool" or spec.pool_config is None:
            continue  # a bad pool setting has its own error (E004)
        entry = demand.setdefault(spec.server, ServerDemand(spec.server))
        entry.aliases.append(spec.alias)
        entry.per_process += spec.pool_config.max_size
    return demand


def expected_processes() -> tuple[int, str]:
    """How many processes open the pools at once, and where that number comes from.

    ``CONNECTION_POOLS["PROCESSES"]`` or, when more are publishing snapshots right now, their
    count: a ``manage.py`` process cannot see how many gunicorn workers a server runs.
    """
    from .cluster.store import StoreUnavailable, store

    configured = conf.get("PROCESSES")
    try:
        publishing = len(store.read_snapshots().snapshots)
    except StoreUnavailable:
        publishing = 0
    if publishing > (configured or 1):
        return publishing, "processes publishing statistics now"
    if configured:
        return int(configured), "CONNECTION_POOLS['PROCESSES']"
    return 1, "one process: CONNECTION_POOLS['PROCESSES'] is not set and no process is publishing"


@register(Tags.database)
def check_server_connection_budget(app_configs: Any = None, databases: Any = None, **kwargs: Any
                                   ) -> list[CheckMessage]:
    """connection_pools.W201: the pools' cluster-wide maximum would exceed a server's ``max_connections``.

    A database check (``manage.py check --database default``, ``migrate``): it asks each server
    for ``max_connections`` minus its reserved connections, on a short-lived connection.
    """
    if not databases:
        return []
    from .conf.aliases import spec_for
    from .insight.health import timeout
    from .sources.probes import check_database

    processes, source = expected_processes()
    messages: list[CheckMessage] = []
    for demand in pooled_demand().values():
        if not set(demand.aliases) & set(databases):
            continue
        _check, limits = check_database(spec_for(demand.aliases[0]), timeout())
        if limits is None:
            continue  # unreachable: Django's own database checks report it
        reserved = limits.superuser_reserved + limits.reserved
        available = limits.available
        total = processes * demand.per_process
        if total > available:
            messages.append(CheckWarning(
                f"The pools may open {processes} x {demand.per_process} = {total} connections to {demand.server} "
                f"(aliases {', '.join(demand.aliases)}; {source}), more than the {available} it accepts "
                f"(max_connections {limits.max_connections} - {reserved} reserved).",
                hint="Lower DATABASE_POOL_SIZE / DATABASE_POOL_OVERFLOW, run fewer processes "
                     "(CONNECTION_POOLS['PROCESSES'] says how many you expect), raise the server's "
                     "max_connections, or put PgBouncer in front.",
                id="connection_pools.W201",
            ))
    return messages


@register()
def check_redis_urls(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """connection_pools.E006: a Redis pool's URL redis-py cannot read (a bad option such as ``?db=x``
    would otherwise fail every request that touches the pool)."""
    from .backends.redis.pools import url_problem

    errors = []
    for name, settings in conf.get("REDIS").items():
        problem = url_problem(settings.get("url")) if isinstance(settings, dict) else None
        if problem is not None:
            errors.append(Error(f"CONNECTION_POOLS['REDIS'][{name!r}]['url'] {problem}",
                                hint="See the README's REDIS_URL / REDIS_CACHE_URL.", id="connection_pools.E006"))
    return errors


@register()
def check_replica_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """connection_pools.E101: bad REPLICAS values; W101: replicas but no ReplicaRouter."""
    from django.conf import settings

    from .routing import replicas

    messages: list[Any] = [
        Error(f"CONNECTION_POOLS['REPLICAS']: {problem}", hint="See docs/read-replicas.md.", id="connection_pools.E101")
        for problem in replicas.settings_problems(conf.get("REPLICAS"))
    ]
    routers = [r if isinstance(r, str) else f"{type(r).__module__}.{type(r).__qualname__}"
               for r in getattr(settings, "DATABASE_ROUTERS", [])]
    if not messages and replicas.replica_aliases() and "connection_pools.routers.ReplicaRouter" not in routers:
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



# --- transaction pooling (PgBouncer) ----------------------------------------------------------------------
@register()
def check_transaction_pooling(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connection_pools.E302: an alias behind PgBouncer in transaction mode (``POOLERS``) whose settings would
    leave state on a shared server connection: server-side cursors, prepared statements, ``assume_role``
    (``SET ROLE`` once per client connection), or startup ``options`` (PgBouncer refuses them)."""
    from django.db import connections

    from .conf.aliases import poolers

    messages: list[CheckMessage] = []
    for alias, kind in poolers().items():
        if kind != "pgbouncer":
            messages.append(Error(f"CONNECTION_POOLS['POOLERS'][{alias!r}] is {kind!r}; the only pooler known is "
                                  "'pgbouncer'.", hint="See docs/server-tier.md.", id="connection_pools.E302"))
            continue
        db = connections.settings.get(alias)
        if db is None:
            continue
        options = db.get("OPTIONS") or {}
        problems = []
        if not db.get("DISABLE_SERVER_SIDE_CURSORS"):
            problems.append("DISABLE_SERVER_SIDE_CURSORS must be True (a WITH HOLD cursor lives on one server "
                            "connection)")
        if options.get("prepare_threshold") is not None:
            problems.append("OPTIONS['prepare_threshold'] must be None (prepared statements live on one server "
                            "connection)")
        if options.get("assume_role"):
            problems.append("OPTIONS['assume_role'] runs SET ROLE once per client connection, not per transaction")
        if options.get("options"):
            problems.append("OPTIONS['options'] is a startup parameter PgBouncer refuses")
        messages += [Error(f"DATABASES[{alias!r}] goes through PgBouncer in transaction mode: {problem}.",
                           hint="DATABASE_POOLER=pgbouncer sets the first two (connection_pools.env); "
                                "see docs/server-tier.md.", id="connection_pools.E302")
                     for problem in problems]
    return messages


def detect_pgbouncer(alias: str, timeout: float) -> bool | None:
    """True when ``alias`` connects to a PgBouncer, False to PostgreSQL itself, None when it cannot tell."""
    import psycopg

    from .conf.aliases import probe_params
    from .sources.pgbouncer_admin import is_pgbouncer

    params = probe_params(alias, timeout=timeout, application_name="connection_pools.check")
    params.pop("options", None)  # PgBouncer refuses it: the question is what answers without it
    params["prepare_threshold"] = None
    try:
        with psycopg.connect(**params) as conn:
            return is_pgbouncer(conn)
    except (psycopg.Error, OSError):
        return None


@register(Tags.database)
def check_pgbouncer_detected(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connection_pools.W301: an alias turns out to connect to a PgBouncer but is not marked as such
    (``DATABASE_POOLER=pgbouncer``), so server-side cursors, prepared statements and session state are not
    kept out of its transactions. A database check (``manage.py check --database default``, ``migrate``)."""
    if not databases:
        return []
    from .conf.aliases import alias_specs
    from .insight.health import timeout

    messages: list[CheckMessage] = []
    for alias in databases:
        spec = alias_specs().get(alias)
        if spec is None or not spec.is_ours or spec.pooler:
            continue
        if detect_pgbouncer(alias, timeout()):
            messages.append(CheckWarning(
                f"DATABASES[{alias!r}] ({spec.server}) is a PgBouncer, but the engine does not know it: in "
                "transaction mode, server-side cursors, prepared statements and SET would break or leak "
                "between clients.",
                hint="Set DATABASE_POOLER=pgbouncer (or CONNECTION_POOLS['POOLERS'] = {alias: 'pgbouncer'} with "
                     "DISABLE_SERVER_SIDE_CURSORS and OPTIONS['prepare_threshold'] = None); docs/server-tier.md.",
                id="connection_pools.W301"))
    return messages


# --- kinds of pool (CONNECTION_POOLS["SOURCES"]) ------------------------------------------------------------
@register()
def check_pool_kinds(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connection_pools.E501: a ``SOURCES`` line that does not work; W501: a source whose kind no module's
    ``KIND`` describes (it is shown anyway, under ``other_pools``); E502: kinds of one group whose entries differ."""
    from .sources.kinds import groups, resolve

    messages: list[CheckMessage] = []
    hint = ("Give the source module KIND = PoolKind(...) (connection_pools.core.kinds) and list the module in "
            "CONNECTION_POOLS['SOURCES']: see docs/api.md, 'Adding a kind of pool'.")
    resolved: list[tuple[object, Registration, set[str]]] = []
    for entry in conf.get("SOURCES"):
        try:
            registration = resolve(entry)
            resolved.append((entry, registration, {source.kind for source in registration.discover()}))
        except Exception as exc:  # an import error, or a discover() that fails: one sentence, not a traceback
            messages.append(Error(f"CONNECTION_POOLS['SOURCES'] entry {entry!r} does not work: "
                                  f"{type(exc).__name__}: {exc}", hint=hint, id="connection_pools.E501"))
    if messages:
        return messages  # the kinds cannot be read while a line does not resolve
    described = {registration.kind.kind for _, registration, _ in resolved if registration.kind is not None}
    for entry, registration, found in resolved:
        for kind in sorted(found - described):
            messages.append(CheckWarning(
                f"CONNECTION_POOLS['SOURCES'] entry {entry!r} yields pools of kind {kind!r}, which no KIND "
                f"describes (module {registration.module!r}): they show under other_pools with the statistics' "
                "own names.", hint=hint, id="connection_pools.W501"))
    for group, members in groups().items():
        shapes = {kind.kind: [(f.name, repr(f.annotation)) for f in kind.fields] for kind in members}
        first, *others = shapes.items()
        for name, shape in others:
            if shape != first[1]:
                messages.append(Error(
                    f"Kinds {first[0]!r} and {name!r} share the group {group!r} of GET stats but not its keys.",
                    hint="Kinds of one group list the same fields with the same types (one entry shape, one "
                         "schema); give the other kind a group of its own.", id="connection_pools.E502"))
    return messages
