"""``manage.py poolstats --server`` and the PgBouncer block of its report: the server tier as text.

Reads what :meth:`~connection_pools.service.ConnectionPoolService.server` answers (the census of
each server and each PgBouncer, as the server-tier job last sampled them); samples nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..core.responses import CensusJSON, PgBouncerJSON, PgBouncerPoolJSON, ServerJSON, SessionJSON
from ..sources.pgbouncer_figures import POOL_LINE
from .pool_report import render


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _session(label: str, session: SessionJSON | None) -> str:
    if session is None:
        return f"  {label}: none"
    text = f"  {label}: {session['seconds']:.1f} s  pid {session['pid']}  {session['owner']}"
    if session["request"] or session["view"]:
        text += f"  ({session['request'] or 'view ' + str(session['view'])})"
    if session["query"]:
        text += f"\n      {session['query']}"
    return text


def format_census(name: str, census: CensusJSON) -> list[str]:
    """One server's block."""
    head = (f"Server {census['server']} ({name}, {census['role']}; aliases {', '.join(census['aliases'])}), "
            f"census {census['age_seconds']:.1f} s old" + (" (STALE)" if census["stale"] else ""))
    if not census["ok"]:
        return [head, f"  census failed: {census['error']}", ""]
    states, kinds = census["states"], census["by_kind"]
    lines = [
        head,
        f"  connections {census['connections']} of {census['available']} available "
        f"(max_connections {census['max_connections']}, "
        f"{(census['superuser_reserved'] or 0) + (census['reserved'] or 0)} reserved), headroom {census['headroom']}",
        f"  by state: active {states['active']}  idle {states['idle']}  idle in transaction "
        f"{states['idle_in_transaction']}  aborted {states['idle_in_transaction_aborted']}  other {states['other']}",
        f"  by owner: ours {kinds['ours']}  PgBouncer {kinds['pooler']}  probes {kinds['probe']}  "
        f"others {kinds['other']}  "
        f"replication {kinds['replication']}  background {kinds['background']}",
        f"  top owners ({len(census['owners'])} of {census['owners_total']}):",
    ]
    for owner in census["owners"]:
        if owner["kind"] == "background":
            continue
        reporting = owner["reporting"]
        note = "" if reporting is None else "  [reporting]" if reporting else "  [STOPPED REPORTING]"
        lines.append(f"    {owner['total']:>4}  {owner['kind']:<11} {owner['label']}{note}")
    lines.append(_session("longest query", census["longest_query"]))
    lines.append(_session("longest idle in transaction", census["longest_idle_in_transaction"]))
    lines.append(f"  blocked on locks: {census['blocked_total']}")
    for blocked in census["blocked"][:5]:
        session = blocked["session"]
        by = ", ".join(f"pid {pid} ({who})" for pid, who in zip(blocked["blocked_by"], blocked["blockers"],
                                                               strict=False))
        lines.append(f"    pid {session['pid']} ({session['owner']}) waits {session['seconds']:.1f} s for {by}")
    leaks = "not checked (cluster store unreachable)" if not census["leaks_checked"] else str(census["leaks_total"])
    lines.append(f"  leaked connections: {leaks}")
    for leak in census["leaks"][:5]:
        lines.append(f"    pid {leak['pid']}  {leak['host']} pid {leak['process_pid']} ({leak['alias']})  "
                     f"{leak['reason']}, open {leak['age_seconds']:.0f} s, {leak['state']}")
    lines.append("")
    return lines


def format_pgbouncer(name: str, bouncer: PgBouncerJSON) -> list[str]:
    """One PgBouncer's block."""
    head = f"PgBouncer {bouncer['server']} ({name}, {bouncer['version'] or 'version unknown'})"
    if not bouncer["reachable"]:
        return [f"{head}: UNREACHABLE: {bouncer['error']}", ""]
    paused = ", ".join(bouncer["paused"]) or "none"
    config = bouncer["config"]
    lines = [f"{head}: reachable, paused: {paused}",
             f"  clients {bouncer['clients']} (max_client_conn {config['max_client_conn']}), servers "
             f"{bouncer['servers']}, default_pool_size {config['default_pool_size']}, logins in the last 10 s "
             f"{bouncer['recent_logins']}"]
    lines += pgbouncer_pool_lines(bouncer["pools"])
    lines.append("")
    return lines


def pgbouncer_pool_lines(pools: Mapping[str, PgBouncerPoolJSON]) -> list[str]:
    """One line per PgBouncer pool, with PgBouncer's names (the PgBouncer kind's line, as ``poolstats`` shows it)."""
    return [render(POOL_LINE, pool, key=key) for key, pool in sorted(pools.items())]


def format_server(server: ServerJSON) -> str:
    """The whole ``--server`` report."""
    lines = [f"Server tier at {_when(server['generated_at'])}", ""]
    for name, census in sorted(server["servers"].items()):
        lines += format_census(name, census)
    for name, bouncer in sorted(server["pgbouncers"].items()):
        lines += format_pgbouncer(name, bouncer)
    recs = server["recommendations"]
    lines.append("Recommendations:" if recs else "Recommendations: none")
    lines += [f"  [{rec['severity'].upper()}] {rec['pool']}: {rec['issue']} - {rec['suggestion']}" for rec in recs]
    return "\n".join(lines)
