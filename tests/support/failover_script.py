"""Run inside ``manage.py shell`` by ``tests/test_replicas_failover_contexts.py``: ORM reads
outside any web request -- in the main thread, a new thread, asyncio code and a forked worker
process -- while the replica is stopped, then after it is started again, in one long-lived
process without the background sampler. Prints one JSON line (``RESULT {...}``)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

from connection_pools.core import jobs
from connection_pools.routing import replicas
from project.workload.models import Item
from tests.support import services

REPLICA = "replica1"
READS = 10


def read_once() -> dict[str, Any]:
    """One routed ORM read; which alias the router chose and which server answered."""
    queryset = Item.objects.all()
    alias = queryset.db
    try:
        list(queryset[:1])
    except Exception as exc:
        return {"ok": False, "alias": alias, "error": f"{type(exc).__name__}: {exc}"[:200]}
    port = connections[alias].connection.info.port
    return {"ok": True, "alias": alias, "port": port}


def reads(count: int = READS) -> list[dict[str, Any]]:
    return [read_once() for _ in range(count)]


def in_thread() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def run() -> None:
        try:
            found.extend(reads())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return found


def in_asyncio() -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        return [await sync_to_async(read_once)() for _ in range(READS)]

    return asyncio.run(main())


def in_forked_worker() -> list[dict[str, Any]]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a worker process forked from a process with live pools
        os.close(read_end)
        try:
            payload = json.dumps(reads()).encode()
        except BaseException as exc:
            payload = json.dumps([{"ok": False, "error": repr(exc)}]).encode()
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        data = incoming.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def main() -> None:
    replica_port = connections[REPLICA].settings_dict["PORT"]
    result: dict[str, Any] = {"sampler_running": jobs.is_running(), "replica_port": int(replica_port)}
    result["down"] = {"main": reads(), "thread": in_thread(), "asyncio": in_asyncio(), "worker": in_forked_worker()}
    status = replicas.replica_status()[REPLICA]
    result["status_while_down"] = {"in_rotation": status["in_rotation"], "reason": status["reason"],
                                   "fallbacks": status["fallbacks"]}
    services.start("replica")
    started = time.monotonic()
    back: list[dict[str, Any]] = []
    while time.monotonic() - started < 60:
        outcome = read_once()
        back.append(outcome)
        if outcome.get("port") == int(replica_port):
            break
        time.sleep(0.2)
    result["back"] = back
    result["status_after"] = replicas.replica_status()[REPLICA]["in_rotation"]
    result["sampler_running_after"] = jobs.is_running()
    print("RESULT " + json.dumps(result))


main()
