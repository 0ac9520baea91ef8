"""One background thread per process that runs the app's periodic jobs.

Modules register jobs with :func:`every` (publishing snapshots, sampling replica
lag, history, the auto-tuner). The thread starts lazily (:func:`ensure_started`
from the first request, a worker's ``post_fork`` hook, or a command) and is
pid-aware: after a fork the child starts its own, never trusting the parent's.
A failing job is logged and retried at its next interval; it never stops the others.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .runtime import runtime

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """A periodic job: ``func()`` every ``interval()`` seconds."""

    name: str
    func: Callable[[], object]
    interval: Callable[[], float]
    next_run: float = field(default=0.0)


_jobs: dict[str, Job] = {}
_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_thread_pid: int | None = None
_stopping = threading.Event()


def every(interval: float | Callable[[], float], name: str) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Decorator: run the function every ``interval`` seconds (a number or a callable
    read each time, so settings changes apply) in the background thread."""

    def register(func: Callable[[], object]) -> Callable[[], object]:
        get_interval = interval if callable(interval) else (lambda: float(interval))
        with _lock:
            _jobs[name] = Job(name=name, func=func, interval=get_interval)
        return func

    return register


def unregister(name: str) -> None:
    """Remove a job (tests)."""
    with _lock:
        _jobs.pop(name, None)


def run_job_now(name: str) -> None:
    """Run one job synchronously in the calling thread (tests, shutdown)."""
    job = _jobs[name]
    job.func()


def ensure_started() -> None:
    """Start this process's background thread unless it is already running here."""
    global _thread, _thread_pid
    pid = os.getpid()
    if _thread_pid == pid and _thread is not None and _thread.is_alive():
        return
    with _lock:
        if _thread_pid == pid and _thread is not None and _thread.is_alive():
            return
        _stopping.clear()
        _thread = threading.Thread(target=_run, name="connection-pools-background", daemon=True)
        _thread_pid = pid
        _thread.start()


def stop(timeout: float = 5.0) -> None:
    """Stop the background thread (at shutdown)."""
    _stopping.set()
    _wake.set()
    if _thread is not None and _thread_pid == os.getpid() and _thread is not threading.current_thread():
        _thread.join(timeout)


def _reset() -> None:
    # Only the jobs' thread: the jobs themselves are registered once, at app start.
    stop()


def is_running() -> bool:
    return _thread is not None and _thread_pid == os.getpid() and _thread.is_alive()


def _run() -> None:
    while not _stopping.is_set():
        now = time.monotonic()
        with _lock:
            due = [job for job in _jobs.values() if job.next_run <= now]
            pending = [job.next_run for job in _jobs.values() if job.next_run > now]
        for job in due:
            try:
                job.func()
            except Exception:
                logger.exception("connection_pools background job %r failed", job.name)
            try:
                job.next_run = time.monotonic() + max(job.interval(), 0.05)
            except Exception:
                job.next_run = time.monotonic() + 5.0
        with _lock:
            upcoming = [job.next_run for job in _jobs.values()] + pending
        delay = (min(upcoming) - time.monotonic()) if upcoming else 1.0
        _wake.wait(timeout=min(max(delay, 0.05), 1.0))
        _wake.clear()


runtime.register("core.jobs", _reset)
