"""In-process ASGI / WSGI harness: N requests straight into the application, no network, no server.

    set -a; eval "$(scripts/devservices env)"; SECRET_KEY=$(scripts/secret-key); set +a
    DJANGO_SETTINGS_MODULE=bench.settings_lean .venv/bin/python bench/profile_asgi.py asgi /one-query/ \
        [--requests 3000] [--concurrency 32] [--profile yappi] [--app project|django|reused]

* ``asgi``: the ASGI application called from one asyncio loop, ``--concurrency`` tasks each
  sending requests back to back (as uvicorn would, minus the HTTP parsing and the socket);
* ``wsgi``: the WSGI application called from ``--concurrency`` threads (as gunicorn's threaded
  worker would, minus the socket).

Prints requests/s (wall), CPU seconds of this process per request (all threads, the number a
shared 2-core machine perturbs least), and with ``--profile yappi`` the functions by total CPU
time over all threads, grouped by package (ours, Django, asgiref, psycopg...); yappi is not in
requirements-dev.txt (``pip install yappi``) and inflates everything, so read its shares, not its
absolute times. ``YAPPI_OUT=file.pstat`` also saves the profile for ``pstats``.

Settings for the comparisons: ``bench/settings_profile.py`` (our engine or Django's, the
project's middleware, only ours, or none; ``/noop/`` without a database) and
``bench/settings_bare.py`` (bare Django: no apps, no middleware, no database).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _scope(path: str) -> dict[str, Any]:
    raw, _, query = path.partition("?")
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": raw, "raw_path": raw.encode(), "query_string": query.encode(),
        "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"harness")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 18100),
    }


def run_asgi(app: Any, path: str, requests: int, concurrency: int) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = defaultdict(int)

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)  # the client never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(_scope(path), receive, send)

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    async def main() -> float:
        per, extra = divmod(requests, concurrency)
        started = time.perf_counter()
        await asyncio.gather(*(worker(per + (i < extra)) for i in range(concurrency)))
        return time.perf_counter() - started

    return asyncio.run(main()), dict(statuses)


def run_wsgi(app: Any, path: str, requests: int, concurrency: int) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = defaultdict(int)
    lock = threading.Lock()
    raw, _, query = path.partition("?")

    def one(_: int) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": raw, "QUERY_STRING": query, "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "18100", "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0), "HTTP_USER_AGENT": "harness",
        }
        got: list[int] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            got.append(int(status.split()[0]))
            return lambda data: None

        result = app(environ, start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        with lock:
            statuses[got[0]] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    return time.perf_counter() - started, dict(statuses)


GROUPS = (
    ("ours", (str(ROOT / "connection_pools"), str(ROOT / "project"))),
    ("django", ("/django/",)),
    ("asgiref", ("/asgiref/",)),
    ("psycopg", ("/psycopg/", "/psycopg_pool/", "/psycopg_binary/")),
    ("prometheus", ("/django_prometheus/", "/prometheus_client/")),
    ("redis", ("/redis/", "/django_redis/")),
    ("stdlib", ("/lib/python3",)),
)


def group_of(path: str) -> str:
    for name, needles in GROUPS:
        if any(n in path for n in needles):
            return name
    return "other"


def report_yappi(top: int, requests: int) -> None:
    import yappi

    stats = yappi.get_func_stats()
    by_group: dict[str, float] = defaultdict(float)
    rows = []
    for s in stats:
        by_group[group_of(s.module)] += s.tsub
        rows.append(s)
    total = sum(by_group.values())
    print(f"\nself CPU by package (yappi, all threads): {total:.3f} s = {total / requests * 1e6:.0f} us/request")
    for name, value in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<11} {value:7.3f} s {value / requests * 1e6:7.0f} us/req  {value / total * 100:5.1f} %")
    print(f"\ntop {top} by self time:")
    for s in sorted(rows, key=lambda s: -s.tsub)[:top]:
        print(f"  {s.tsub / requests * 1e6:7.1f} us/req self {s.ttot / requests * 1e6:8.1f} tot  n/req "
              f"{s.ncall / requests:6.2f}  {s.name}  {s.module.replace(str(ROOT) + '/', '')}:{s.lineno}")
    print(f"\ntop {top} of our functions by inclusive time:")
    ours = [s for s in rows if group_of(s.module) == "ours"]
    for s in sorted(ours, key=lambda s: -s.ttot)[:top]:
        print(f"  {s.ttot / requests * 1e6:8.1f} us/req tot {s.tsub / requests * 1e6:7.1f} self  n/req "
              f"{s.ncall / requests:6.2f}  {s.name}  {s.module.replace(str(ROOT) + '/', '')}:{s.lineno}")
    out = os.environ.get("YAPPI_OUT")
    if out:
        stats.save(out, type="pstat")
        print(f"\npstats written to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["asgi", "wsgi"])
    parser.add_argument("path")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", choices=["none", "yappi"], default="none")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--app", choices=["project", "django", "reused"], default="project",
                        help="project: project.asgi / project.wsgi; django: Django's own get_*_application(); "
                             "reused: connection_pools.asgi's handler (request threads reused)")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if args.mode == "asgi":
        if args.app == "project":
            from project.asgi import application
        elif args.app == "reused":
            from connection_pools.asgi import get_asgi_application as reused

            application = reused()
        else:
            from django.core.asgi import get_asgi_application
            application = get_asgi_application()
        run = run_asgi
    else:
        if args.app == "project":
            from project.wsgi import application
        else:
            from django.core.wsgi import get_wsgi_application
            application = get_wsgi_application()
        run = run_wsgi

    _, statuses = run(application, args.path, args.warmup, args.concurrency)
    if set(statuses) != {200}:
        print(f"warm-up statuses: {statuses}", file=sys.stderr)
    if args.profile == "yappi":
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start(builtins=True, profile_threads=True)
    cpu0 = time.process_time()
    wall, statuses = run(application, args.path, args.requests, args.concurrency)
    cpu = time.process_time() - cpu0
    if args.profile == "yappi":
        import yappi

        yappi.stop()
    label = f"{args.mode} {os.environ['DJANGO_SETTINGS_MODULE']} {args.app} {args.path} c={args.concurrency}"
    print(f"{label}: {args.requests / wall:8.1f} req/s  {cpu / args.requests * 1e6:6.0f} us CPU/req "
          f"(process, all threads)  statuses {statuses}  threads alive {threading.active_count()}")
    if args.profile == "yappi":
        report_yappi(args.top, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
