"""Django's ASGI handler, with each request's thread reused by later requests.

Django's ``ASGIHandler`` runs each request's synchronous work (sync views, ``MiddlewareMixin``
hooks, ``sync_to_async`` and the async ORM, ``request_started`` / ``request_finished``) on a
thread of the request's own: asgiref's ``ThreadSensitiveContext`` creates a one-thread
executor per request, and when the request ends shuts it down from yet another new thread.
That is two thread starts and a join per request, and a new thread-local ``DatabaseWrapper``
(and a cold thread) for every request -- measured in ``bench/profile_asgi.py`` as most of what
Django's ASGI handler costs over its WSGI handler on a no-database view.

:class:`ReusedThreadASGIHandler` keeps Django's model -- one thread per request, for the whole
request, never shared by two requests at once -- but takes that thread from a set of idle
ones and puts it back when the request is over, as a threaded WSGI worker reuses its threads
(asgiref's ``ThreadSensitiveContext(executor=...)`` is made for this). A thread still busy when
its request ends (work left running after a cancellation) is not reused: it is shut down
once that work is done, as asgiref would. At most :attr:`~ReusedThreadASGIHandler.max_idle_threads`
idle threads are kept per process; a burst beyond them gets new threads that end with their
request.

Connections are not affected: Django gives pooled connections back at the end of each request
(``request_finished``, on the request's thread), as under WSGI.

    # project/asgi.py
    from connection_pools.asgi import get_asgi_application
    application = get_asgi_application()
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

from .conf import serving

#: asgiref 3.13's ``ThreadSensitiveContext(executor=...)``; without it Django's own behaviour.
SUPPORTED = "executor" in inspect.signature(ThreadSensitiveContext.__init__).parameters


class RequestThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether work is still queued or running on it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="asgi-request")
        self._count_lock = threading.Lock()
        self.pending = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._count_lock:
            self.pending += 1

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._count_lock:
                    self.pending -= 1

        try:
            return super().submit(run)
        except BaseException:
            with self._count_lock:
                self.pending -= 1
            raise


class ReusedThreadASGIHandler(ASGIHandler):
    """``ASGIHandler`` whose per-request threads are reused by later requests (see the module)."""

    #: Idle request threads kept for later requests, per process.
    max_idle_threads = 64

    def __init__(self) -> None:
        # The request middleware notes an ASGI handler when Django builds it in async mode; in a
        # chain whose middleware below it are sync-only (project/middleware.py) Django builds it
        # in sync mode, so the handler says so itself, before the chain is built.
        serving.note_asgi_handler()
        serving.refuse_unsafe_asgi()
        super().__init__()
        self._idle: list[RequestThread] = []
        self._pid = os.getpid()

    def _take(self) -> RequestThread:
        if self._pid != os.getpid():  # a forked child: the parent's threads do not exist here
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return RequestThread()

    def _give_back(self, thread: RequestThread) -> None:
        if thread.pending == 0 and len(self._idle) < self.max_idle_threads and self._pid == os.getpid():
            self._idle.append(thread)
        else:
            thread.shutdown(wait=False)  # its worker ends once the work left on it is done

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not SUPPORTED:
            await super().__call__(scope, receive, send)
            return
        # As Django's ASGIHandler.__call__, with the request's thread taken from the idle ones.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            self._give_back(thread)


def get_asgi_application() -> ReusedThreadASGIHandler:
    """``django.core.asgi.get_asgi_application()``, returning a :class:`ReusedThreadASGIHandler`."""
    django.setup(set_prefix=False)
    return ReusedThreadASGIHandler()
