"""Moved to :mod:`connection_pools.sources.pgbouncer_admin` (the reader) and
:mod:`connection_pools.core.pooler` (its typed rows); this path keeps working."""

from .sources.pgbouncer_admin import *  # noqa: F403
from .sources.pgbouncer_admin import __all__  # noqa: F401
