"""A gunicorn threaded worker that slow clients cannot starve: request heads are read in the event loop.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as its first
bytes arrive; the thread then blocks until the whole request head is in. A few
clients that send their headers a byte at a time hold every thread of every worker,
and normal requests time out (measured: 12 such clients against 3 workers x 4
threads). :class:`BufferedHeadWorker` reads each request head in the worker's main
loop, without blocking, and gives the connection to a thread only once the head is
complete; a head that is not complete ``HEAD_TIMEOUT`` seconds after its first byte
is dropped (the client is treated as gone). Request bodies are read by the
application as before: behind a buffering proxy (nginx in ``docker-compose.yml``)
they arrive whole.

Select it with ``worker_class`` (``project/gunicorn_conf.py`` does). TLS connections
are left to gunicorn's own handling (their bytes are encrypted).
"""

from __future__ import annotations

import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: Seconds a request head may take to arrive, from its first byte.
HEAD_TIMEOUT = 10.0
#: A head still incomplete at this size goes to a thread anyway: gunicorn's own limits reject it.
HEAD_BUFFER_LIMIT = 64 * 1024
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class HeadBufferingSocket:
    """A client socket that hands out the request head the event loop buffered, then reads on.

    While a head is in progress, reads are bounded by its deadline: a thread that ended up
    reading a partial head (one past :data:`HEAD_BUFFER_LIMIT`) is not held longer either.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._tail = b""  # the last bytes seen, to find a head end split across two reads
        self.deadline: float | None = None  # monotonic; None once the head is complete

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def start_head(self) -> None:
        """A request head is expected now (a new connection, or the next request on a kept-alive one)."""
        self.deadline = time.monotonic() + HEAD_TIMEOUT
        self._tail = b""

    def _note(self, data: bytes) -> None:
        seen = self._tail + data
        if any(end in seen for end in _HEAD_ENDS):
            self.deadline = None
        self._tail = seen[-3:]

    def ready_for_a_thread(self) -> bool:
        """The head is complete, or too large to wait for here."""
        return self.deadline is None or len(self._buffer) >= HEAD_BUFFER_LIMIT

    def read_available(self) -> bool:
        """Buffer what the client has sent (non-blocking); False when it closed the connection."""
        try:
            data = self._sock.recv(HEAD_BUFFER_LIMIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self._buffer += data
        self._note(data)
        return True

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def recv(self, size: int, *flags: int) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        if self.deadline is None:
            return self._sock.recv(size, *flags)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return b""  # too slow: as if the client had left
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            return b""
        finally:
            self._sock.settimeout(previous)
        self._note(data)
        return data


class BufferedHeadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker, with request heads read in the main loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heads_in_progress: deque[Any] = deque()

    def enqueue_req(self, conn: Any) -> None:
        """Give ``conn`` to a thread once its request head is complete; until then, wait in the poller."""
        if self.cfg.is_ssl or (conn.initialized and conn.parser.unreader.buf.getvalue()):
            super().enqueue_req(conn)  # encrypted, or the next request is already in gunicorn's buffer
            return
        if not isinstance(conn.sock, HeadBufferingSocket):
            conn.sock = HeadBufferingSocket(conn.sock)
        conn.sock.start_head()
        conn.sock.setblocking(False)
        self.heads_in_progress.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn: Any, _fileobj: Any) -> None:
        if not conn.sock.read_available():
            self._drop_head(conn)
            return
        if conn.sock.ready_for_a_thread():
            self._stop_waiting(conn)
            conn.data_ready = True  # the bytes are in our buffer: the thread must not wait on the socket
            conn.sock.setblocking(True)
            super().enqueue_req(conn)

    def _stop_waiting(self, conn: Any) -> None:
        self.heads_in_progress.remove(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop_head(self, conn: Any) -> None:
        self._stop_waiting(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """gunicorn's sweep of idle connections, plus heads that took longer than ``HEAD_TIMEOUT``."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.heads_in_progress if c.sock.expired(now)]:
            self._drop_head(conn)
