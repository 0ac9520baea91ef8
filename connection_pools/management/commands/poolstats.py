"""``manage.py poolstats``: the live pool statistics of the running server processes."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ..arguments import seconds_option
from ..server_report import format_server, pgbouncer_pool_lines

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_NO_DATA = 2

HELP = """Show the live connection-pool statistics of the running server processes.

The command opens no pool of its own: it reads the aggregate that every server
process publishes to Redis every few seconds (sums over processes, peaks, merged
wait-time histograms), with each pool's health and the recommendations.

With --server: every connection on each database server (the census: by state and
owner, headroom, the longest query and idle-in-transaction session, lock waiters,
leaks) and each PgBouncer's pools, as the server processes last sampled them.

Exit status (usable from cron or Nagios):
  0  every pool is healthy and there is no high-severity recommendation
  1  a high-severity recommendation, or a pool (or the whole system) is unhealthy
     (--server: a high-severity finding, a failed census or an unreachable PgBouncer)
  2  no server process is publishing statistics, or Redis is unreachable
With --watch the status is that of the last refresh before Ctrl-C."""


#: The longest refresh interval --watch accepts (a day): beyond it, time.sleep() itself refuses.
WATCH_MAX_SECONDS = 86400.0


def watch_seconds(raw: Any) -> float:
    """``--watch``'s value: a finite number of seconds, more than 0 and at most a day; else one sentence."""
    return seconds_option(raw, "--watch", WATCH_MAX_SECONDS, returncode=EXIT_NO_DATA)


class NoData(Exception):
    """Nothing to show: Redis is unreachable or no server process is publishing."""


class Command(BaseCommand):
    help = HELP
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Keep the exit-status paragraph's line breaks in --help.
        from argparse import RawDescriptionHelpFormatter

        return super().create_parser(prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the aggregate (and health) as JSON")
        parser.add_argument(
            "--watch", metavar="SECONDS", default=None,
            help=f"refresh every SECONDS (more than 0, at most {WATCH_MAX_SECONDS:g}) until Ctrl-C "
                 "(with --json: one JSON document per line)",
        )
        parser.add_argument("--pool", metavar="NAME", help="only this pool (e.g. db_default, redis_cache)")
        parser.add_argument("--alerts", action="store_true", help="print only high-severity findings")
        parser.add_argument("--server", action="store_true",
                            help="the server tier: every connection on each database server (the census) and "
                                 "each PgBouncer, as the server processes last sampled them")

    def handle(self, *args: Any, **options: Any) -> None:
        watch = None if options["watch"] is None else watch_seconds(options["watch"])
        if watch is None:
            code = self._once(options)
        else:
            code = EXIT_OK
            try:
                while True:
                    if not options["json"] and self.stdout.isatty():
                        self.stdout.write("\033[H\033[2J", ending="")  # clear the screen: refresh in place
                    code = self._once(options)
                    self.stdout.flush()
                    time.sleep(watch)
            except KeyboardInterrupt:
                pass
        if code:
            sys.exit(code)

    # -- one refresh -------------------------------------------------------------
    def _once(self, options: dict[str, Any]) -> int:
        if options["server"]:
            return self._server(options)
        try:
            stats, health = self._read(options["pool"], per_process=options["json"])
        except NoData as exc:
            self.stderr.write(str(exc))
            return EXIT_NO_DATA
        code = exit_status(stats, health)
        if options["json"]:
            self.stdout.write(json.dumps({"stats": stats, "health": health, "exit_status": code}, default=str))
        elif options["alerts"]:
            self.stdout.write(format_alerts(stats, health))
        else:
            self.stdout.write(format_report(stats, health))
        return code

    def _server(self, options: dict[str, Any]) -> int:
        from connection_pools.service import connection_pool_service

        server = connection_pool_service.server()
        if server["source"] != "cluster":
            self.stderr.write("Redis is unreachable, so the server census the server processes keep there cannot "
                              "be read. Check REDIS_URL and that Redis is running.")
            return EXIT_NO_DATA
        if not server["servers"] and not server["pgbouncers"]:
            self.stderr.write(
                "No server census yet: a running server process samples every database server (and each "
                "PgBouncer of PGBOUNCER_ADMIN_URL) every few seconds; start it, or wait a few seconds.")
            return EXIT_NO_DATA
        high = [rec for rec in server["recommendations"] if rec.get("severity") == "high"]
        failed = [c for c in server["servers"].values() if not c["ok"]]
        failed += [b for b in server["pgbouncers"].values() if not b["reachable"]]
        code = EXIT_PROBLEM if high or failed else EXIT_OK
        if options["json"]:
            self.stdout.write(json.dumps({"server": server, "exit_status": code}, default=str))
        elif options["alerts"]:
            lines = [f"ALERT: {rec['pool']} - {rec['issue']}" for rec in high]
            lines += [f"ALERT: {item.get('name')} - {item.get('error')}" for item in failed]
            self.stdout.write("\n".join(lines) if lines else "OK: no high-severity finding.")
        else:
            self.stdout.write(format_server(server))
        return code

    def _read(self, pool: str | None, *, per_process: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        from connection_pools.service import connection_pool_service

        stats = connection_pool_service.pool_stats(per_process=per_process)
        if not stats.get("redis_available", False) or stats.get("source") != "cluster":
            raise NoData(
                "Redis is unreachable, so the server processes' statistics cannot be read "
                "(this command has no pools of its own). Check REDIS_URL and that Redis is running."
            )
        if not stats.get("processes", {}).get("count"):
            raise NoData(
                "No server process is publishing pool statistics: start the server "
                "(or wait a few seconds after its first request) and try again."
            )
        # The health job's last result: this command checks nothing itself.
        health = connection_pool_service.cached_health()
        if pool is not None:
            stats, health = only_pool(stats, health, pool)
        return stats, health


def only_pool(stats: dict[str, Any], health: dict[str, Any] | None,
              pool: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Narrow the aggregate (and health) to one pool; CommandError for an unknown name."""
    known = [p["pool"] for p in (*stats["database_pools"].values(), *stats["redis_pools"].values())]
    if pool not in known:
        raise CommandError(f"Unknown pool {pool!r}. Known pools: {', '.join(sorted(known))}.", returncode=EXIT_NO_DATA)
    narrowed = dict(stats)
    narrowed["database_pools"] = {k: v for k, v in stats["database_pools"].items() if v["pool"] == pool}
    narrowed["redis_pools"] = {k: v for k, v in stats["redis_pools"].items() if v["pool"] == pool}
    narrowed["recommendations"] = [r for r in stats.get("recommendations", []) if r.get("pool") == pool]
    if "per_process" in stats:
        narrowed["per_process"] = {
            key: {kind: {k: v for k, v in pools.items() if v.get("pool") == pool}
                  for kind, pools in process.items() if kind in ("database_pools", "redis_pools")}
            for key, process in stats["per_process"].items()
        }
    if health is not None:
        health = {**health, "pools": {k: v for k, v in health.get("pools", {}).items() if k == pool}}
    return narrowed, health


def unhealthy_pools(health: dict[str, Any] | None) -> list[str]:
    """Names of the pools whose health check failed."""
    if not health:
        return []
    return sorted(name for name, check in health.get("pools", {}).items() if not check.get("healthy", True))


def exit_status(stats: dict[str, Any], health: dict[str, Any] | None) -> int:
    """0 when healthy; 1 with any high-severity recommendation or unhealthy pool."""
    high = any(r.get("severity") == "high" for r in stats.get("recommendations", []))
    if high or unhealthy_pools(health) or (health or {}).get("status") == "unhealthy":
        return EXIT_PROBLEM
    return EXIT_OK


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def _health_text(health: dict[str, Any] | None, pool: str) -> str:
    check = (health or {}).get("pools", {}).get(pool)
    if check is None:
        return "health unknown"
    text = "healthy" if check.get("healthy") else "UNHEALTHY"
    if check.get("latency_ms") is not None:
        text += f" ({check['latency_ms']:.1f} ms)"
    if check.get("error"):
        text += f": {check['error']}"
    return text


def format_report(stats: dict[str, Any], health: dict[str, Any] | None) -> str:
    """The human table: one block per pool, then the recommendations."""
    processes = stats.get("processes", {}).get("count", 0)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stats.get("generated_at", time.time())))
    status = (health or {}).get("status", "unknown")
    lines = [f"Connection pools: {processes} process(es) reporting, overall {status}, at {when}", ""]
    for alias, pool in sorted(stats.get("database_pools", {}).items()):
        wait = pool.get("wait_time") or {}
        lag = pool.get("replica_lag_seconds")
        lines += [
            f"{alias}: {pool['active_connections']}/{pool['pool_size']}",
            f"  {pool['pool']}  {pool.get('kind')} {pool.get('role') or ''}  {_health_text(health, pool['pool'])}",
            f"  active {pool['active_connections']}  available {pool.get('available_connections', 0)}"
            f"  waiting {pool.get('waiting', 0)}  overflow {pool.get('overflow', 0)}/{pool.get('max_overflow', 0)}"
            f"  peak {pool.get('peak_connections', 0)}  max {pool.get('max_size', 0)}",
            f"  checkouts {pool.get('checkouts', 0)}  created {pool.get('connections_created', 0)}"
            f"  closed {pool.get('connections_closed', 0)}  recycled {pool.get('recycled', 0)}"
            f"  errors {pool.get('connection_errors', 0)}  timeouts {pool.get('timeouts', 0)}"
            f"  fallbacks {pool.get('fallbacks', 0)}",
            f"  wait avg {_ms(pool.get('average_wait_time'))}  p50 {_ms(wait.get('p50'))}"
            f"  p95 {_ms(wait.get('p95'))}  p99 {_ms(wait.get('p99'))}"
            + (f"  replica lag {lag:.2f} s" if lag is not None else ""),
            "",
        ]
    for name, pool in sorted(stats.get("redis_pools", {}).items()):
        wait = pool.get("wait_time") or {}
        lines += [
            f"{name}: {pool['in_use_connections']}/{pool.get('max_connections', 0)}",
            f"  {pool['pool']}  redis  {_health_text(health, pool['pool'])}",
            f"  in use {pool['in_use_connections']}  available {pool.get('available_connections', 0)}"
            f"  created {pool.get('created_connections', 0)}  peak {pool.get('peak_in_use', 0)}"
            f"  checkouts {pool.get('checkouts', 0)}  errors {pool.get('connection_errors', 0)}"
            f"  timeouts {pool.get('timeouts', 0)}",
            f"  wait p50 {_ms(wait.get('p50'))}  p95 {_ms(wait.get('p95'))}",
            "",
        ]
    if stats.get("pgbouncer_pools"):
        lines.append("PgBouncer pools:")
        lines += pgbouncer_pool_lines(stats["pgbouncer_pools"])
        lines.append("")
    recs = stats.get("recommendations", [])
    lines.append("Recommendations:" if recs else "Recommendations: none")
    for rec in recs:
        lines.append(f"  [{str(rec.get('severity', '')).upper()}] {rec['pool']}: {rec['issue']} - {rec['suggestion']}")
    return "\n".join(lines)


def format_alerts(stats: dict[str, Any], health: dict[str, Any] | None) -> str:
    """Only what needs a human now: high-severity findings and unhealthy pools (the guide's ALERT lines)."""
    lines = [
        f"ALERT: {rec['pool']} - {rec['issue']}"
        for rec in stats.get("recommendations", [])
        if rec.get("severity") == "high"
    ]
    checks = health.get("pools", {}) if health else {}
    for pool in unhealthy_pools(health):
        lines.append(f"ALERT: {pool} - unhealthy: {checks[pool].get('error') or 'check failed'}")
    return "\n".join(lines) if lines else "OK: no high-severity finding."
