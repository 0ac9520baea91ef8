"""The project's settings with the toy kind registered (``DJANGO_SETTINGS_MODULE`` of the toy's served tests):
the one line a project adds for a kind of pool of its own."""

from connection_pools.conf import DEFAULTS
from project.settings import *  # noqa: F403
from project.settings import CONNECTION_POOLS

CONNECTION_POOLS = {**CONNECTION_POOLS, "SOURCES": (*DEFAULTS["SOURCES"], "tests.support.toy_source")}
