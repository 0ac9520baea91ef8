"""Receivers for Django's signals, and the app's own signals.

``pool_alert``: sent for each new high-severity finding (kwargs: ``recommendation``).
``pool_resized``: sent when a live pool is resized (kwargs: ``pool``, ``old``, ``new``, ``reason``).
"""

from __future__ import annotations

from typing import Any

from django.core.signals import request_started
from django.dispatch import Signal, receiver

from . import background

pool_alert = Signal()
pool_resized = Signal()


@receiver(request_started, dispatch_uid="connection_pools.start_background")
def _start_background(**kwargs: Any) -> None:
    # Lazily, in the serving process itself (after any fork): publishing,
    # sampling and tuning run in one background thread per process.
    background.ensure_started()
