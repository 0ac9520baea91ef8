"""This process's state, held in one place, with one ``reset()`` (after a fork, between tests).

Each module that keeps state for the life of a process (the source registry, the cluster
store's client and breaker, the reset epoch it honoured, the last health report, the
alerts announced, the replica set, the persistent-connection trackers, the cached alias
specs...) keeps it in one object and registers that object here, saying whether a forked
child must start it afresh. :func:`reset` resets them all; a fork resets the ones marked
``after_fork`` by itself (``os.register_at_fork``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Part:
    """One holder of process state."""

    name: str
    reset: Callable[[], None]
    #: A forked child starts it afresh.
    after_fork: bool


class Runtime:
    """The registry of this process's state holders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, Part] = {}

    def register(self, name: str, reset: Callable[[], None], *, after_fork: bool = False) -> None:
        """Register (or replace) a state holder's reset."""
        with self._lock:
            self._parts[name] = Part(name, reset, after_fork)

    def names(self) -> list[str]:
        return sorted(self._parts)

    def reset(self) -> None:
        """Reset every part (tests: a process as it starts)."""
        for part in list(self._parts.values()):
            part.reset()

    def after_fork(self) -> None:
        """In a forked child: reset what the parent's state must not leak into."""
        self._lock = threading.Lock()  # a parent thread may have held it at fork time
        for part in list(self._parts.values()):
            if part.after_fork:
                part.reset()


#: This process's runtime.
runtime = Runtime()
os.register_at_fork(after_in_child=runtime.after_fork)


def register(name: str, reset: Callable[[], None], *, after_fork: bool = False) -> None:
    """Register a state holder of this process (see :class:`Runtime`)."""
    runtime.register(name, reset, after_fork=after_fork)


def reset() -> None:
    """Reset every state holder of this process."""
    runtime.reset()
