"""Load tool: drive the example workload through a real gunicorn with ``wrk``.

Starts gunicorn (several workers) on loopback, or targets ``--url``, runs wrk with
a bounded number of connections for a bounded time, and reports throughput,
latency percentiles, every response status (503s checked for ``Retry-After``),
the most server connections seen in ``pg_stat_activity`` meanwhile, and at the
end the pool figures from the admin API. Examples::

    python bench/load.py --path /one-query/ --clients 32 --duration 10
    python bench/load.py --path "/slow/?seconds=0.05" --clients 200 --threads 100 \\
        --env DATABASE_POOL_SIZE=10 --env DATABASE_POOL_OVERFLOW=20
    python bench/load.py --settings bench.settings_plain --path /one-query/

Needs the services (``scripts/devservices start`` and its ``env``) and ``wrk``
(``scripts/system-deps`` installs it). The functions here are reused by
``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WRK_SCRIPT = ROOT / "bench" / "wrk_report.lua"
STATS_PATH = "/api/v1/admin/connection-pools/stats"
ADMIN_USERNAME = "bench-admin"


def setup_django() -> None:
    """Configure Django (project settings) in this process: the tool reads the
    database settings and creates its admin token through the ORM."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


# --- wrk ---------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one wrk run measured."""

    label: str
    url: str
    clients: int
    duration_s: float
    requests: int
    throughput: float  # responses per second
    latency_ms: dict[str, float]
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    missing_retry_after: int
    max_server_connections: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """Responses that were not 2xx/3xx, plus connections that got no response."""
        bad = sum(n for status, n in self.statuses.items() if status >= 400)
        return bad + sum(self.socket_errors.values())

    @property
    def failures_only_503_with_retry_after(self) -> bool:
        """True when every failure is a 503 that carried ``Retry-After``."""
        others = sum(n for status, n in self.statuses.items() if status >= 400 and status != 503)
        return others == 0 and not any(self.socket_errors.values()) and self.missing_retry_after == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (statuses keyed by string)."""
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        data["failures"] = self.failures
        return data

    def line(self) -> str:
        """One human line: throughput, percentiles, statuses, connections."""
        lat = self.latency_ms
        statuses = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))
        errors = " ".join(f"{k}:{v}" for k, v in self.socket_errors.items() if v)
        conns = "" if self.max_server_connections is None else f"  max server conns {self.max_server_connections}"
        return (f"{self.label:<28} c={self.clients:<4} {self.throughput:8.1f} req/s  "
                f"p50 {lat['p50']:.2f} p90 {lat['p90']:.2f} p99 {lat['p99']:.2f} max {lat['max']:.1f} ms  "
                f"[{statuses}{' ' + errors if errors else ''}]{conns}")


def wrk_binary() -> str:
    """Path of wrk, or a clear error naming the install command."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: run scripts/system-deps (or apt-get install -y wrk)")
    return path


def wrk_version() -> str:
    """wrk's version string (its first output line names it)."""
    out = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if len(out.split()) > 1 else "unknown"


def run_wrk(url: str, *, clients: int, duration: float, label: str = "", wrk_threads: int = 2,
            timeout: float = 30.0, method: str | None = None, body: str | None = None) -> LoadResult:
    """Run wrk once against ``url`` and parse the JSON line of ``wrk_report.lua``."""
    threads = max(1, min(wrk_threads, clients))
    seconds = max(1, round(duration))  # wrk takes whole seconds
    cmd = [wrk_binary(), "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s",
           "--timeout", f"{timeout:g}s", "-s", str(WRK_SCRIPT), url]
    if method:
        cmd += ["--", method, *([body] if body else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + timeout + 60,
                          stdin=subprocess.DEVNULL)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line[len("WRK_JSON "):])
            break
    else:
        raise RuntimeError(f"wrk gave no report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    latency_ms = {f"p{k}": v / 1000 for k, v in lat["percentiles"].items()}
    latency_ms.update(min=lat["min"] / 1000, mean=lat["mean"] / 1000, max=lat["max"] / 1000)
    errors = {k: v for k, v in raw["errors"].items() if k != "status"}  # status errors are in statuses
    return LoadResult(
        label=label or urlsplit(url).path, url=url, clients=clients, duration_s=round(seconds, 3),
        requests=raw["requests"], throughput=raw["requests"] / seconds if seconds else 0.0,
        latency_ms=latency_ms, statuses={int(k): v for k, v in raw["statuses"].items()},
        socket_errors=errors, missing_retry_after=raw["missing_retry_after"],
    )


# --- server connections --------------------------------------------------------


def with_application_name(url: str, name: str) -> str:
    """``url`` with ``?application_name=name`` so pg_stat_activity can tell this server's connections."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", name))
    return urlunsplit(parts._replace(query=urlencode(query)))


class ConnectionSampler:
    """Samples ``pg_stat_activity`` in a thread: server backends whose
    ``application_name`` is ``name`` (i.e. one gunicorn's connections).
    ``with ConnectionSampler(dsn, name) as s: ...; s.max``."""

    def __init__(self, dsn: str, application_name: str, *, interval: float = 0.05) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @property
    def max(self) -> int | None:
        """The most backends seen at once (None before any sample)."""
        return max(self.samples) if self.samples else None

    def count(self) -> int:
        """One sample now, on a fresh connection."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            return self._count(conn)

    def _count(self, conn: Any) -> int:
        from connection_pools.backends.postgresql.attribution import OWNED_SQL, owned_params

        row = conn.execute(
            f"SELECT count(*) FROM pg_stat_activity WHERE {OWNED_SQL} AND backend_type = 'client backend'",
            owned_params(self.application_name),
        ).fetchone()
        return int(row[0])

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                while not self._stop.is_set():
                    self.samples.append(self._count(conn))
                    self._stop.wait(self.interval)
        except psycopg.Error as exc:  # report, never kill the benchmark
            self.error = str(exc)

    def __enter__(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# --- the server under test ---------------------------------------------------------


def start_server(name: str, *, workers: int, threads: int | None, settings: str = "project.settings",
                 env: dict[str, str] | None = None, asgi: bool = False) -> Any:
    """A ``GunicornServer`` (tests/support/server.py) on the current database whose
    connections carry ``application_name=name`` (``asgi``: an ``AsgiServer``, uvicorn workers;
    ``threads`` None: the project's own setting). Use it as a context manager."""
    from connection_pools import env as cp_env
    from project import dev_services
    from tests.support.server import AsgiServer, GunicornServer

    environ = dev_services.environ()
    primary = environ["DATABASE_URL"]
    replicas = cp_env.env_list(environ, "DATABASE_REPLICA_URLS")
    server_env = {
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": with_application_name(primary, name),
        "DATABASE_REPLICA_URLS": ",".join(with_application_name(url, name) for url in replicas),
        "CONNECTION_POOLS_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    if asgi:
        return AsgiServer(workers=workers, env=server_env, timeout=90)
    return GunicornServer(workers=workers, threads=threads, env=server_env, timeout=90)


def admin_token() -> str:
    """A DRF token of a staff superuser ``bench-admin`` (created on first use,
    after applying migrations), to read the admin API."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from rest_framework.authtoken.models import Token

    call_command("migrate", interactive=False, verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True})
    if not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    token, _ = Token.objects.get_or_create(user=user)
    connections.close_all()
    return token.key


def fetch_pool_stats(base_url: str, token: str) -> dict[str, Any]:
    """The admin API's stats, or ``{"error": ...}`` when it does not answer."""
    request = urllib.request.Request(base_url + STATS_PATH, headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        return {"error": f"{STATS_PATH}: {exc}"}


def reset_pool_stats(base_url: str, token: str) -> bool:
    """``POST reset-stats`` (every process of the server); True when it answered 200."""
    request = urllib.request.Request(base_url + STATS_PATH.replace("/stats", "/reset-stats"), data=b"",
                                     method="POST", headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status == 200
    except (urllib.error.URLError, TimeoutError):
        return False


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_pool_stats(stats: dict[str, Any]) -> str:
    """The guide's key figures of every pool, one line each."""
    if "error" in stats:
        return f"  pool stats unavailable ({stats['error']})"
    lines = []
    for alias, pool in sorted((stats.get("database_pools") or {}).items()):
        keys = ("active_connections", "peak_connections", "connections_created", "connections_closed",
                "average_wait_time", "pool_size", "overflow", "timeouts", "connection_errors")
        lines.append(f"  db {alias}: " + ", ".join(f"{k}={_figure(pool[k])}" for k in keys if k in pool))
    for name, pool in sorted((stats.get("redis_pools") or {}).items()):
        keys = ("in_use_connections", "available_connections", "created_connections")
        lines.append(f"  redis {name}: " + ", ".join(f"{k}={_figure(pool[k])}" for k in keys if k in pool))
    for rec in stats.get("recommendations") or []:
        lines.append(f"  recommendation [{rec.get('severity')}] {rec.get('pool')}: {rec.get('issue')}"
                     f" -> {rec.get('suggestion')}")
    return "\n".join(lines) or "  (no pools reported)"


# --- command line --------------------------------------------------------------------


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` -> dict, with a clear error for a malformed pair."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (1 when a request failed
    other than as a 503 with Retry-After)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/one-query/", help="path to load (default /one-query/)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10, max 600)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0, help="wrk's per-request timeout (seconds)")
    parser.add_argument("--url", help="target a running server instead of starting gunicorn")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (default 8)")
    parser.add_argument("--settings", default="project.settings", help="DJANGO_SETTINGS_MODULE of the server")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="server env (repeat)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 1000) or not (0 < args.duration <= 600):
        parser.error("--clients must be 1..1000 and --duration 0..600 seconds")
    env = parse_env(args.env)
    wrk_binary()
    setup_django()
    token = admin_token()
    name = f"bench-load-{os.getpid()}"
    if args.url:
        base = args.url.rstrip("/")
        reset_pool_stats(base, token)  # the figures printed at the end cover this run
        result = run_wrk(base + args.path, clients=args.clients, duration=args.duration,
                         wrk_threads=args.wrk_threads, timeout=args.timeout)
    else:
        with start_server(name, workers=args.workers, threads=args.threads, settings=args.settings,
                          env=env) as server:
            base = server.url
            reset_pool_stats(base, token)
            with ConnectionSampler(os.environ.get("DATABASE_URL", ""), name) as sampler:
                result = run_wrk(base + args.path, clients=args.clients, duration=args.duration,
                                 wrk_threads=args.wrk_threads, timeout=args.timeout)
            result.max_server_connections = sampler.max
            stats = fetch_pool_stats(base, token)
    if args.url:
        stats = fetch_pool_stats(base, token)
    result.extra["pool_stats"] = stats
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.line())
        print("pool figures from the API:")
        print(format_pool_stats(stats))
    return 0 if result.failures_only_503_with_retry_after else 1


if __name__ == "__main__":
    sys.exit(main())
