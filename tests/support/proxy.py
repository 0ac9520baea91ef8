"""A TCP proxy in front of a real server that a test can cut and restore (an outage on demand).

As psycopg's own tests do: the pool connects through the proxy; :meth:`Proxy.cut` drops
every connection through it and refuses new ones (as a stopped server does), and
:meth:`Proxy.restore` accepts again on the same port. The real server keeps running,
so other tests are not disturbed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from tests.support.server import free_port


class Proxy:
    """``with Proxy(host, port) as proxy: connect to proxy.port; proxy.cut(); proxy.restore()``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, int(target_port))
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.accepted = 0

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Proxy:
        self.restore()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.cut()

    def restore(self) -> None:
        """Accept connections (again) on :attr:`port`."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="test-proxy-accept", daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one, at once."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    @property
    def open_connections(self) -> int:
        """Client connections currently relayed (two sockets each)."""
        with self._lock:
            return len(self._sockets) // 2

    # -- relaying -------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="test-proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.difference_update((src, dst))
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
