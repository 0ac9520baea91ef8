"""The project's settings for the ASGI server tests (``DJANGO_SETTINGS_MODULE``).

Idle overflow connections close after one second (psycopg's ``max_idle``, 10 minutes by
default), so a test sees each pool settle back at ``pool_size`` after a burst.
``ASGI_TEST_SILENCE_E301=1`` silences ``connection_pools.E301``: persistent connections are
then served under ASGI anyway, to watch the leak the check prevents.
"""

import os

from project.settings import *  # noqa: F403
from project.settings import DATABASES

for _database in DATABASES.values():
    if isinstance(_database["OPTIONS"].get("pool"), dict):
        _database["OPTIONS"]["pool"]["max_idle"] = 1.0

if os.environ.get("ASGI_TEST_SILENCE_E301") == "1":
    SILENCED_SYSTEM_CHECKS = ["connection_pools.E301"]
