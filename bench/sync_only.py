"""Sync-only variants of middleware classes, for ``bench/settings_profile.py``.

``bench.sync_only.<dotted path with "__" for ".">`` is the class at that path, subclassed with
``async_capable = False``: in an async (ASGI) stack Django then runs a run of such middleware as one
sync block -- one ``sync_to_async`` hop into it, one ``async_to_sync`` back for the view -- instead
of one hop per hook.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    base = import_string(name.replace("__", "."))
    cls = type(base.__name__, (base,), {"async_capable": False, "__module__": __name__})
    globals()[name] = cls
    return cls
