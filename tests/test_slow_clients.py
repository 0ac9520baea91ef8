"""Slow clients cannot starve the server that ``make run`` starts: a gunicorn with the project's
worker settings (project/gunicorn_conf.py) keeps serving normal requests while more clients
than it has threads send their request heads a few bytes at a time; a head that never
completes is dropped, and kept-alive connections still serve one request after another."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.server import GunicornServer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: More slow clients than the worker has threads (8 in project/gunicorn_conf.py; gunicorn's default is 1).
SLOW_CLIENTS = 12


@contextmanager
def trickling_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send a request head one header line every half second, never ending it."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    stop = threading.Event()

    def trickle() -> None:
        for sock in sockets:
            sock.sendall(b"GET /one-query/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.wait(0.5):
            for sock in sockets:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass  # dropped by the server: what it may do after HEAD_TIMEOUT

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(timeout=10)
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[GunicornServer]:
    with django_db_blocker.unblock(), GunicornServer(workers=1, threads=None) as running:
        yield running


def test_a_normal_request_is_served_while_slow_clients_hold_connections(server: GunicornServer) -> None:
    with trickling_clients(server.port, SLOW_CLIENTS):
        time.sleep(1)  # let every slow head start (not a timing assertion: the request below must succeed)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=8)
        try:
            connection.request("GET", "/one-query/")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
    assert response.status == 200, body[:200]
    assert json.loads(body)["value"] == 1


def test_a_head_that_never_completes_is_dropped(server: GunicornServer) -> None:
    with trickling_clients(server.port, 1) as (sock,):
        sock.settimeout(30)
        assert sock.recv(100) == b""  # the server closed it (gunicorn alone would wait forever)


def test_kept_alive_connections_serve_request_after_request(server: GunicornServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        pids = set()
        for _ in range(5):
            connection.request("GET", "/one-query/")
            response = connection.getresponse()
            assert response.status == 200
            pids.add(json.loads(response.read())["pid"])
            assert response.getheader("Connection", "").lower() != "close"
        connection.request("POST", "/items/", body=json.dumps({"name": "kept-alive"}),
                           headers={"Content-Type": "application/json"})
        created = connection.getresponse()
        assert created.status == 201, created.read()[:200]
        created.read()
    finally:
        connection.close()
    assert len(pids) == 1  # one connection, one worker
