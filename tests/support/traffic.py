"""Concurrent HTTP traffic for end-to-end fault tests: a few client threads that
send requests to a live server until stopped, recording every outcome.

Bounded: each client stops at ``max_seconds`` whatever happens, every request has
a timeout, and only the given base URL (a loopback GunicornServer) is contacted.
``pause()`` parks every client between two requests, so a fault can be injected
while no request is in flight (a query cut in the middle by a dying server
cannot be saved by any pool; what the pool promises is the next checkout).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """A request a client sends: ``Call("GET", "/one-query/")`` or
    ``Call("POST", "/items/")`` (a POST creates an item with a unique name)."""

    method: str
    path: str


@dataclass
class Outcome:
    """What one request got."""

    method: str
    path: str
    started: float  # time.monotonic()
    ended: float
    status: int | None  # None: no HTTP response (connection error, timeout)
    retry_after: str | None = None
    name: str | None = None  # the item name a POST sent
    error: str | None = None
    body: bytes = b""

    @property
    def elapsed(self) -> float:
        return self.ended - self.started

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400


@dataclass(frozen=True)
class Window:
    """An outage made by :meth:`Traffic.outage`: when the server stopped, when its restart began, and from
    when every worker was expected to serve again."""

    stopped: float
    restarting: float
    settled: float


def request(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 30.0) -> tuple[int | None, dict[str, str], bytes, str | None]:
    """One HTTP request: ``(status, headers, body, error)``; status None when no response came."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read(), None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read(), None
    except (urllib.error.URLError, OSError) as exc:
        return None, {}, b"", f"{type(exc).__name__}: {exc}"


class Traffic:
    """``with Traffic(server.url, [Call("GET", "/one-query/")], clients=4) as t: ...``

    Each client cycles through ``calls`` (offset by its index) until the block ends.
    """

    def __init__(self, base_url: str, calls: Sequence[Call], *, clients: int = 4, max_seconds: float = 90.0,
                 timeout: float = 30.0, name_prefix: str = "traffic", headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})  # sent with every request (e.g. an API token)
        self.calls = list(calls)
        self.clients = clients
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.name_prefix = name_prefix
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._parked = 0
        self._parked_changed = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._counter = itertools.count()

    # --- running ---------------------------------------------------------------

    def __enter__(self) -> Traffic:
        deadline = time.monotonic() + self.max_seconds
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index, deadline), daemon=True,
                                      name=f"traffic-{index}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._running.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 10)

    def _client(self, index: int, deadline: float) -> None:
        calls = itertools.islice(itertools.cycle(self.calls), index % len(self.calls), None)
        for call in calls:
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            if not self._running.is_set():
                with self._lock:
                    self._parked += 1
                    self._parked_changed.notify_all()
                self._running.wait(timeout=max(0.0, deadline - time.monotonic()))
                with self._lock:
                    self._parked -= 1
                continue
            self._send(call)

    def _send(self, call: Call) -> None:
        name = data = None
        headers = dict(self.headers)
        if call.method == "POST":
            name = f"{self.name_prefix}-{next(self._counter)}"
            data = json.dumps({"name": name, "quantity": 1}).encode()
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        status, response_headers, body, error = request(call.method, self.base_url + call.path, data=data,
                                                        headers=headers, timeout=self.timeout)
        outcome = Outcome(call.method, call.path, started, time.monotonic(), status,
                          retry_after=response_headers.get("Retry-After"), name=name, error=error,
                          body=body[:500])
        with self._lock:
            self.outcomes.append(outcome)

    # --- control -------------------------------------------------------------------

    @contextlib.contextmanager
    def paused(self, timeout: float = 60.0) -> Iterator[None]:
        """Park every client between two requests for the duration of the block."""
        self._running.clear()
        try:
            with self._lock:
                if not self._parked_changed.wait_for(lambda: self._parked == self.clients, timeout=timeout):
                    raise TimeoutError(f"traffic did not pause within {timeout}s")
            yield
        finally:
            self._running.set()

    def wait_for(self, count: int, *, since: float = 0.0, ok_only: bool = False, path: str | None = None,
                 timeout: float = 30.0) -> list[Outcome]:
        """Wait until ``count`` outcomes that started after ``since`` (optionally only
        successes, only ``path``) are in; return them. Raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.select(since=since, ok_only=ok_only, path=path)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(found)} of {count} responses in {timeout}s: {self.summary()}")
            time.sleep(0.05)

    def outage(self, stop: Callable[[], object], start: Callable[[], object], *, during: int = 8,
               check: Callable[[], object] | None = None, recovery: float = 5.0) -> Window:
        """Stop a server between two requests (``stop``), let ``during`` requests meet the outage (then run
        ``check``), start it again, and wait until a GET succeeds and ``recovery`` seconds more of traffic
        succeed; the times that bound the outage and the recovery."""
        with self.paused():
            stop()
        try:
            stopped = time.monotonic()
            self.wait_for(during, since=stopped, timeout=60)
            if check is not None:
                check()
        finally:
            restarting = time.monotonic()
            start()
        up = time.monotonic()
        deadline = up + 30
        while not self.select(since=up, ok_only=True, path=self.calls[0].path):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no successful request within 30 s of the restart: {self.summary()}")
            time.sleep(0.05)
        first_ok = self.select(since=up, ok_only=True, path=self.calls[0].path)[0]
        settled = first_ok.ended + recovery
        time.sleep(max(0.0, settled - time.monotonic()))
        self.wait_for(10, since=settled, timeout=30)
        return Window(stopped, restarting, settled)

    # --- reading -----------------------------------------------------------------------

    def select(self, *, since: float = 0.0, until: float | None = None, ok_only: bool = False,
               path: str | None = None) -> list[Outcome]:
        """Outcomes that started after ``since`` and (if given) ended before ``until``."""
        with self._lock:
            found = list(self.outcomes)
        return [o for o in found if o.started >= since and (until is None or o.ended <= until)
                and (not ok_only or o.ok) and (path is None or o.path == path)]

    def statuses(self, outcomes: Sequence[Outcome] | None = None) -> Counter[int | None]:
        """Count of outcomes by status (None: no response)."""
        return Counter(o.status for o in (self.select() if outcomes is None else outcomes))

    def summary(self) -> str:
        """Statuses and the first few errors, for assertion messages."""
        failures = [o for o in self.select() if not o.ok][:5]
        detail = "; ".join(f"{o.method} {o.path} -> {o.status} {o.error or o.body[:200]!r}" for o in failures)
        return f"{dict(self.statuses())} {detail}"
