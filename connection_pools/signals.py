"""The app's own signals.

``pool_alert``: sent for each new high-severity finding (kwargs: ``recommendation``, a dict).
``pool_resized``: sent when a live pool is resized (kwargs: ``pool``, ``old``, ``new``, ``reason``).
"""

from __future__ import annotations

from django.dispatch import Signal

pool_alert = Signal()
pool_resized = Signal()
