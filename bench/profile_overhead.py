"""Where a request's CPU goes: our code vs the rest, in one process (cProfile).

Complements the instrumentation-cost benchmark (bench/run_all.py), whose
throughput ratio on a shared 2-core machine moves by several percent from round to
round: this counts, for ``GET /one-query/`` through the full middleware stack (the
Django test client, no network), the time spent inside ``connection_pools`` per
request and lists its most expensive functions. Profiling inflates every figure
alike; the shares are what to read.

    python bench/profile_overhead.py [--requests 3000] [--settings bench.settings_plain]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    """Profile ``--requests`` requests and print the shares; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--path", default="/one-query/")
    parser.add_argument("--settings", default="project.settings")
    args = parser.parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    import django

    django.setup()
    from django.db import close_old_connections
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    for _ in range(300):  # warm up: pools open, code paths imported
        assert client.get(args.path).status_code == 200
        close_old_connections()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.requests):
        client.get(args.path)
        # What a real server does at request end (the test client skips it): the
        # connection goes back to the pool, and the next request checks one out.
        close_old_connections()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    per_request = 1e6 / args.requests

    def share(marker: str) -> float:
        return sum(v[2] for k, v in stats.items() if marker in k[0])

    total = sum(v[2] for v in stats.values())
    ours = share("/connection_pools/")
    prometheus = share("/django_prometheus/") + share("/prometheus_client/")
    print(f"{args.settings} {args.path}: {total * per_request:.0f} us of CPU per request (profiled); "
          f"connection_pools {ours * per_request:.1f} us ({ours / total:.1%}), "
          f"django-prometheus + prometheus_client {prometheus * per_request:.1f} us ({prometheus / total:.1%})")
    top = sorted(((v[2], k) for k, v in stats.items() if "/connection_pools/" in k[0]), reverse=True)[:25]
    for seconds, (filename, line, function) in top:
        print(f"  {seconds * per_request:6.1f} us  {filename.split('/connection_pools/')[1]}:{line} {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
