"""A real gunicorn serving the project, for multi-process and end-to-end tests: under WSGI
(:class:`GunicornServer`) or under ASGI on uvicorn workers (:class:`AsgiServer`).

The workers use the test database (the one pytest-django created) so tests can
see and count what the server wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.db import connections

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_db_name(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def database_urls_for_tests() -> dict[str, str]:
    """DATABASE_URL / DATABASE_REPLICA_URLS rewritten to the test database's name."""
    from connection_pools import env
    from project import dev_services

    name = connections["default"].settings_dict["NAME"]
    environ = dev_services.environ()
    primary = environ["DATABASE_URL"]
    replicas = env.env_list(environ, "DATABASE_REPLICA_URLS")
    return {
        "DATABASE_URL": _with_db_name(primary, name),
        "DATABASE_REPLICA_URLS": ",".join(_with_db_name(url, name) for url in replicas),
    }


_static_collected = False


def collect_static_once() -> None:
    """``collectstatic`` into STATIC_ROOT once per test session, so servers serve the admin's
    and the dashboard's CSS/JS (the project serves STATIC_ROOT at /static/)."""
    global _static_collected
    if not _static_collected:
        from django.core.management import call_command

        call_command("collectstatic", interactive=False, verbosity=0)
        _static_collected = True


class GunicornServer:
    """``with GunicornServer(workers=3) as server: server.get("/items/")``."""

    def __init__(self, *, workers: int = 3, threads: int | None = 4, env: Mapping[str, str] | None = None,
                 timeout: float = 60.0, extra_args: list[str] | None = None) -> None:
        """``threads=None``: the project's own setting (project/gunicorn_conf.py), as ``make run`` uses it."""
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        # Each server publishes its statistics under its own Redis prefix, so
        # snapshots of earlier servers in the same run (alive until their TTL)
        # never count as this server's processes.
        isolated = {
            "CONNECTION_POOLS_KEY_PREFIX": f"test-gunicorn-{self.port}-{uuid.uuid4().hex[:6]}",
            "CONNECTION_POOLS_PUBLISH_INTERVAL": "1",
            "CONNECTION_POOLS_HEALTH_INTERVAL": "1",
        }
        self.env = {**os.environ, **database_urls_for_tests(), **isolated, **(env or {})}
        self.timeout = timeout
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        #: For tests to count the requests they made.
        self.requests_sent = 0
        self.log_path = ROOT / "test-artifacts" / f"gunicorn-{self.port}.log"

    @property
    def key_prefix(self) -> str:
        """The Redis prefix this server's processes publish their statistics under."""
        return self.env["CONNECTION_POOLS_KEY_PREFIX"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The gunicorn command line."""
        return [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), *([] if self.threads is None else ["--threads", str(self.threads)]),
                "--graceful-timeout", "5", "--config", "python:project.gunicorn_conf", *self.extra_args]

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(exist_ok=True)
        collect_static_once()
        log = open(self.log_path, "wb")
        process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()  # the child has its own copy; an open handle here is a ResourceWarning (an error in tests)
        return process

    def run_until_exit(self, timeout: float = 60.0) -> tuple[int, str]:
        """Start the server expecting it to refuse to start: its exit status and its log."""
        process = self._spawn()
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            log = self.log_path.read_text()[-4000:]
            raise AssertionError(f"the server was still running after {timeout}s:\n{log}") from None
        return returncode, self.log_path.read_text()

    def __enter__(self) -> GunicornServer:
        self.process = self._spawn()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "/one-query/", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not answer in {self.timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def __exit__(self, *exc: Any) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def spread_traffic(self, *, batch: int = 30, min_workers: int = 2, limit: int = 600) -> set[int]:
        """Send concurrent ``/one-query/`` requests in batches until at least ``min_workers``
        workers have served some (a single worker may accept a whole burst); bounded by
        ``limit`` requests. Counts them in :attr:`requests_sent`; returns the serving pids."""
        import json
        from concurrent.futures import ThreadPoolExecutor

        def one(_: int) -> int:
            with urllib.request.urlopen(self.url + "/one-query/", timeout=10) as response:
                assert response.status == 200
                return json.loads(response.read())["pid"]

        served: set[int] = set()
        with ThreadPoolExecutor(max_workers=6) as pool:
            while len(served) < min_workers and self.requests_sent < limit:
                served.update(pool.map(one, range(batch)))
                self.requests_sent += batch
        assert len(served) >= min_workers, f"the traffic reached only {len(served)} worker(s)"
        return served

    def worker_pids(self) -> list[int]:
        """The pids of the current workers (children of the master)."""
        assert self.process is not None
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]


class AsgiServer(GunicornServer):
    """The project under ASGI, as ``make run ASGI=1`` serves it: ``CONNECTION_POOLS_ASGI=true``
    makes ``project/gunicorn_conf.py`` load ``project.asgi:application`` on uvicorn workers."""

    def __init__(self, *, workers: int = 2, env: Mapping[str, str] | None = None, timeout: float = 60.0,
                 extra_args: list[str] | None = None) -> None:
        super().__init__(workers=workers, threads=None, env={"CONNECTION_POOLS_ASGI": "true", **(env or {})},
                         timeout=timeout, extra_args=extra_args)
        self.log_path = ROOT / "test-artifacts" / f"uvicorn-{self.port}.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                "--graceful-timeout", "5", "--config", "python:project.gunicorn_conf", *self.extra_args]
