"""Who opened a server connection: the ``application_name`` our engine gives every connection.

Every connection the engine opens (pooled or not) carries an ``application_name`` that names
its owner, so the server census (and any DBA reading ``pg_stat_activity``) can tell our
connections apart and say which process and alias holds each one::

    django[default:4242@web-1]            no application_name of the user's
    billing django[default:4242@web-1]    OPTIONS["application_name"] = "billing"

The prefix (``django``) is ``CONNECTION_POOLS["APPLICATION_NAME"]["PREFIX"]``; a user's own
name (``OPTIONS["application_name"]``, or libpq's ``PGAPPNAME``) comes first, so it stays what
they see first. PostgreSQL keeps at most 63 bytes (``NAMEDATALEN - 1``) and shows every character
that is not printable ASCII as ``?``: the name is built that way here too, so what we compute is
exactly what the server stores.
When it does not fit, the host is cut first (keeping at least 16 bytes of the user's name),
then the user's name.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from ... import conf

#: PostgreSQL's limit (NAMEDATALEN - 1).
MAX_BYTES = 63
#: Bytes of a user's own name kept before our token's host is cut.
USER_KEEP = 16
ALIAS_MAX = 20
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,16}")
_TOKEN = re.compile(r"(?:^|(?<= ))(?P<prefix>[A-Za-z0-9_.-]{1,16})\[(?P<alias>[^\[\]:@ ]+):(?P<pid>\d{1,10})"
                    r"@(?P<host>[^\[\]]*)\]$")
_RESERVED = re.compile(r"[\[\]:@ ]")


@dataclass(frozen=True, slots=True)
class Attribution:
    """What an attributed ``application_name`` says: our process (host, pid) and alias, and the user's name."""

    prefix: str
    alias: str
    pid: int
    #: The host as it fits in the name (possibly cut: compare with :func:`host_matches`).
    host: str
    user_name: str = ""


def printable(text: str) -> str:
    """``text`` as PostgreSQL stores an ``application_name``: non-printable-ASCII characters become ``?``."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def _cut(text: str, size: int) -> str:
    return text[: max(size, 0)]


def settings() -> tuple[bool, str]:
    """``(enabled, prefix)`` from ``CONNECTION_POOLS["APPLICATION_NAME"]``."""
    value = conf.get("APPLICATION_NAME")
    return bool(value.get("ENABLED", True)), str(value.get("PREFIX") or "django")


def application_name(alias: str, user_name: str | None = None, *, prefix: str = "django", pid: int | None = None,
                     host: str | None = None) -> str:
    """The ``application_name`` of a connection of ``alias`` opened by this process (at most 63 bytes)."""
    pid = os.getpid() if pid is None else pid
    ours = parse(user_name)
    if ours is not None:  # already attributed (a copy of our own parameters): attribute once
        user_name = ours.user_name
    host = printable(socket.gethostname() if host is None else host)
    label = _cut(_RESERVED.sub("_", printable(alias)), ALIAS_MAX)
    user = printable(user_name or "").strip()
    fixed = f"{prefix}[{label}:{pid}@]"
    keep = min(len(user) + 1, USER_KEEP + 1) if user else 0
    host = _cut(_RESERVED.sub("_", host), MAX_BYTES - len(fixed) - keep)
    token = f"{prefix}[{label}:{pid}@{host}]"
    if not user:
        return token
    return f"{_cut(user, MAX_BYTES - len(token) - 1)} {token}"


def parse(name: str | None, prefix: str | None = None) -> Attribution | None:
    """What an ``application_name`` says about its owner, or None when it is not one of ours
    (with ``prefix``: only names with that prefix)."""
    if not name:
        return None
    match = _TOKEN.search(name)
    if match is None or (prefix is not None and match["prefix"] != prefix):
        return None
    user = name[: match.start()].rstrip(" ")
    return Attribution(prefix=match["prefix"], alias=match["alias"], pid=int(match["pid"]), host=match["host"],
                       user_name=user)


def host_matches(shown: str, host: str) -> bool:
    """True when ``shown`` (a host as an application_name holds it, maybe cut) is ``host``."""
    full = _RESERVED.sub("_", printable(host))
    return shown == full or (bool(shown) and full.startswith(shown) and len(shown) < len(full))


def apply(alias: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` (psycopg connection keywords) with the attributed ``application_name`` (in place)."""
    enabled, prefix = settings()
    if enabled:
        # The user's own name: in the parameters, else libpq's PGAPPNAME (which ours would otherwise replace).
        own = params.get("application_name") or os.environ.get("PGAPPNAME")
        params["application_name"] = application_name(alias, own, prefix=prefix)
    return params


#: A ``pg_stat_activity`` condition for "the connections of the user's own ``application_name``", attributed
#: or not (parameters: :func:`owned_params`).
OWNED_SQL = "(application_name = %s OR application_name LIKE %s)"


def owned_params(user_name: str) -> list[str]:
    """The parameters of :data:`OWNED_SQL` for ``user_name``."""
    escaped = user_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [user_name, f"{escaped} %[%:%@%]"]
