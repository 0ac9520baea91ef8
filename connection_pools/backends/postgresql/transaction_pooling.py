"""Transaction pooling (``DATABASE_POOLER=pgbouncer``, and our own ``release = "transaction"``): no
session state that outlives a transaction.

Behind a PgBouncer in transaction mode each transaction may run on another server connection,
shared with other clients. Session state set by one statement would stay on a server connection
that another client gets next, and be missing from the one this client gets: a ``SET`` (not
``SET LOCAL``), ``LISTEN``, ``PREPARE``, a ``WITH HOLD`` cursor, a session advisory lock. For an
alias with ``CONNECTION_POOLS["POOLERS"][alias] == "pgbouncer"`` the engine refuses such a
statement with one clear error instead of letting it corrupt other sessions silently.
Server-side cursors and prepared statements are turned off by the settings
(``DISABLE_SERVER_SIDE_CURSORS``, ``prepare_threshold=None``; ``connection_pools.E302`` checks them).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import NotSupportedError

from ... import conf

_SESSION_STATEMENT = re.compile(
    r"^\s*(?:SET\s+(?!LOCAL\b|TRANSACTION\b|CONSTRAINTS\b)|RESET\b|LISTEN\b|PREPARE\b|DECLARE\b.*\bWITH\s+HOLD\b)",
    re.IGNORECASE | re.DOTALL)
_SESSION_LOCK = re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE)


def pooler(alias: str) -> str | None:
    """The pooler in front of ``alias``'s server (``"pgbouncer"``), or None."""
    found = (conf.get("POOLERS") or {}).get(alias)
    return str(found) if found else None


def session_state(sql: str) -> str | None:
    """What session state ``sql`` would leave behind (``"SET"``, ``"LISTEN"``...), or None."""
    match = _SESSION_STATEMENT.match(sql)
    if match is not None:
        return match.group(0).split()[0].upper()
    if "advisory" in sql and _SESSION_LOCK.search(sql):
        return "a session advisory lock"
    return None


def guard(alias: str, sql: Any, *, per_transaction: bool = False) -> None:
    """Raise ``NotSupportedError`` when ``sql`` would leave session state behind a transaction pooler, or on
    a connection that goes back to our pool after each transaction (``per_transaction``:
    ``OPTIONS["pool"]["release"] = "transaction"``, :mod:`.release`)."""
    if not isinstance(sql, str):
        return
    behind_pgbouncer = pooler(alias) == "pgbouncer"
    if not (behind_pgbouncer or per_transaction):
        return
    found = session_state(sql)
    if found is None:
        return
    if behind_pgbouncer:
        raise NotSupportedError(
            f"Database alias {alias!r} goes through PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer): "
            f"{found} would outlive this transaction on a server connection other clients share. Use SET LOCAL "
            "inside transaction.atomic(), pg_advisory_xact_lock(), or a direct connection for session features.")
    raise NotSupportedError(
        f"Database alias {alias!r} gives its connection back to the pool after each transaction "
        f"(OPTIONS['pool']['release'] = 'transaction'): {found} would stay on that connection for whoever checks "
        "it out next, and be missing from the one this alias gets for its next statement. Use SET LOCAL inside "
        "transaction.atomic(), pg_advisory_xact_lock(), or release 'request' for this alias.")
