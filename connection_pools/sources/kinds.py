"""The registered kinds of pool: one per line of ``CONNECTION_POOLS["SOURCES"]``.

A line names a source module that defines ``KIND`` (its :class:`~connection_pools.core.kinds.PoolKind`)
and ``discover()`` (its sources for the current settings): ``"connection_pools.sources.redis"``. The
older form, the ``discover`` function itself (``"connection_pools.sources.redis.discover"``) or a
callable, still works: the kind is then its module's ``KIND``. A source whose kind no registered
descriptor describes is shown anyway (:func:`kind_of` gives a generic descriptor, in ``other_pools``),
and system check ``connection_pools.E501`` names the module to give a ``KIND``.

Resolved once per settings object (``setting_changed`` forgets them).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..core.kinds import PoolKind, generic_kind

logger = logging.getLogger(__name__)

Discover = Callable[[], Iterable[Any]]


@dataclass(frozen=True)
class Registration:
    """One line of ``SOURCES``, resolved."""

    entry: str
    discover: Discover
    #: The module's ``KIND``; None when it has none (E501).
    kind: PoolKind | None
    module: str


def resolve(entry: object) -> Registration:
    """One ``SOURCES`` line: a module path, a dotted path to its ``discover``, or a callable."""
    if isinstance(entry, str):
        module = _module(entry)
        if module is not None:
            found = getattr(module, "discover", None)
            if not callable(found):
                raise ImportError(f"CONNECTION_POOLS['SOURCES']: module {entry!r} has no discover() function.")
            return Registration(entry, found, _kind_of(module), module.__name__)
        discover = import_string(entry)
    elif callable(entry):
        discover = entry
    else:
        raise ImportError(f"CONNECTION_POOLS['SOURCES']: {entry!r} is neither a dotted path nor a callable.")
    module_name = getattr(discover, "__module__", "") or ""
    return Registration(str(entry) if isinstance(entry, str) else f"{module_name}.{discover.__name__}", discover,
                        _kind_of(sys.modules.get(module_name)), module_name)


def _module(path: str) -> ModuleType | None:
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and (path == exc.name or path.startswith(exc.name + ".")):
            return None  # not a module ("package.module.discover"): a dotted path to an attribute
        raise  # a module that exists but imports something missing


def _kind_of(module: ModuleType | None) -> PoolKind | None:
    kind = getattr(module, "KIND", None)
    return kind if isinstance(kind, PoolKind) else None


@cache
def registrations() -> tuple[Registration, ...]:
    from .. import conf

    return tuple(resolve(entry) for entry in conf.get("SOURCES"))


def registered() -> tuple[PoolKind, ...]:
    """Every registered kind, in the order of ``SOURCES`` (each once)."""
    return tuple(_by_kind().values())


@cache
def _by_kind() -> dict[str, PoolKind]:
    found: dict[str, PoolKind] = {}
    for registration in registrations():
        if registration.kind is not None:
            found.setdefault(registration.kind.kind, registration.kind)
    return found


_warned: set[str] = set()
_warned_lock = threading.Lock()


def kind_of(kind: str) -> PoolKind:
    """The descriptor of ``kind``: the registered one, else a generic one (logged once per kind)."""
    described = _by_kind().get(kind)
    if described is not None:
        return described
    with _warned_lock:
        if kind not in _warned:
            _warned.add(kind)
            logger.warning("no descriptor for pools of kind %r: shown under other_pools with the statistics' own "
                           "names (see connection_pools.E501)", kind)
    return _generic(kind)


@cache
def _generic(kind: str) -> PoolKind:
    return generic_kind(kind)


def groups() -> dict[str, tuple[PoolKind, ...]]:
    """The registered kinds by group (``database_pools``...), groups in the order of their first kind."""
    found: dict[str, list[PoolKind]] = {}
    for kind in registered():
        if kind.group is not None:
            found.setdefault(kind.group, []).append(kind)
    return {group: tuple(kinds) for group, kinds in found.items()}


def forget() -> None:
    """Resolve ``SOURCES`` again at the next use."""
    registrations.cache_clear()
    _by_kind.cache_clear()


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONNECTION_POOLS":
        forget()


setting_changed.connect(_forget, dispatch_uid="connection_pools.sources.kinds")
