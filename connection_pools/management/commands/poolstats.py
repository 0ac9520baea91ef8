"""``manage.py poolstats``: the live pool statistics of the running server processes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...core.responses import HealthJSON
from ..arguments import seconds_option
from ..pool_report import format_report, pool_groups, recommendations
from ..server_report import format_server

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
        failed = [(c["name"], c["error"]) for c in server["servers"].values() if not c["ok"]]
        failed += [(b["name"], b["error"]) for b in server["pgbouncers"].values() if not b["reachable"]]
        code = EXIT_PROBLEM if high or failed else EXIT_OK
        if options["json"]:
            self.stdout.write(json.dumps({"server": server, "exit_status": code}, default=str))
        elif options["alerts"]:
            lines = [f"ALERT: {rec['pool']} - {rec['issue']}" for rec in high]
            lines += [f"ALERT: {name} - {error}" for name, error in failed]
            self.stdout.write("\n".join(lines) if lines else "OK: no high-severity finding.")
        else:
            self.stdout.write(format_server(server))
        return code

    def _read(self, pool: str | None, *, per_process: bool) -> tuple[Mapping[str, object], HealthJSON | None]:
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


def only_pool(stats: Mapping[str, object], health: HealthJSON | None,
              pool: str) -> tuple[dict[str, object], HealthJSON | None]:
    """Narrow the aggregate (and health) to one pool; CommandError for an unknown name."""
    found = dict(pool_groups(stats))
    known = [str(entry.get("pool")) for entries in found.values() for entry in entries.values() if "pool" in entry]
    if pool not in known:
        raise CommandError(f"Unknown pool {pool!r}. Known pools: {', '.join(sorted(known))}.", returncode=EXIT_NO_DATA)
    narrowed = dict(stats)
    for group, entries in found.items():
        narrowed[group] = {key: entry for key, entry in entries.items() if entry.get("pool") == pool}
    narrowed["recommendations"] = [r for r in recommendations(stats) if r.get("pool") == pool]
    processes = stats.get("per_process")
    if isinstance(processes, dict):
        narrowed["per_process"] = {
            key: {group: {k: v for k, v in entries.items() if v.get("pool") == pool}
                  for group, entries in pool_groups(process)}
            for key, process in processes.items()
        }
    if health is not None:
        health = {**health, "pools": {k: v for k, v in health["pools"].items() if k == pool}}
    return narrowed, health


def unhealthy_pools(health: HealthJSON | None) -> list[str]:
    """Names of the pools whose health check failed."""
    if not health:
        return []
    return sorted(name for name, check in health.get("pools", {}).items() if not check.get("healthy", True))


def exit_status(stats: Mapping[str, object], health: HealthJSON | None) -> int:
    """0 when healthy; 1 with any high-severity recommendation or unhealthy pool."""
    high = any(r.get("severity") == "high" for r in recommendations(stats))
    if high or unhealthy_pools(health) or (health is not None and health.get("status") == "unhealthy"):
        return EXIT_PROBLEM
    return EXIT_OK


def format_alerts(stats: Mapping[str, object], health: HealthJSON | None) -> str:
    """Only what needs a human now: high-severity findings and unhealthy pools (the guide's ALERT lines)."""
    lines = [f"ALERT: {rec.get('pool')} - {rec.get('issue')}" for rec in recommendations(stats)
             if rec.get("severity") == "high"]
    checks = health["pools"] if health else {}
    for pool in unhealthy_pools(health):
        lines.append(f"ALERT: {pool} - unhealthy: {checks[pool].get('error') or 'check failed'}")
    return "\n".join(lines) if lines else "OK: no high-severity finding."
