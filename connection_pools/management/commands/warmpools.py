"""``manage.py warmpools``: open the PostgreSQL pools now and wait for ``pool_size`` connections."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connection_pools import conf
from connection_pools.backends.postgresql.live import pooled_aliases, warm_pools
from connection_pools.management.arguments import seconds_option

#: The longest --timeout (an hour, the longest pool_timeout).
MAX_TIMEOUT = conf.MAX_WAIT_SECONDS


class Command(BaseCommand):
    help = "Open the PostgreSQL pools and wait until each holds pool_size connections; report what was opened."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("aliases", nargs="*", help="database aliases (default: every pooled alias)")
        parser.add_argument("--timeout", default=None, metavar="SECONDS",
                            help=f"seconds to wait per pool, > 0 and at most {MAX_TIMEOUT:g} "
                                 "(default: its pool_timeout)")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args: Any, aliases: list[str], timeout: str | float | None = None, as_json: bool = False,
               **options: Any) -> None:
        known = pooled_aliases()
        unknown = [alias for alias in aliases if alias not in known]
        if unknown:
            raise CommandError(
                f"not a pooled database alias: {', '.join(unknown)} (pooled: {', '.join(known) or 'none'})"
            )
        # (a float from call_command(timeout=2.0) is read as its text)
        seconds = None if timeout is None else seconds_option(str(timeout), "--timeout", MAX_TIMEOUT)
        reports = warm_pools(list(aliases) or None, timeout=seconds)
        if as_json:
            self.stdout.write(json.dumps(reports, indent=2))
        else:
            for r in reports:
                status = "ready" if r["ready"] else f"NOT READY: {r['error']}"
                self.stdout.write(
                    f"{r['pool']}: {r['open']}/{r['wanted']} connections open in {r['seconds']:.3f}s ({status})"
                )
        failed = [r["pool"] for r in reports if not r["ready"]]
        if failed:
            raise CommandError(f"pools not ready: {', '.join(failed)}")

