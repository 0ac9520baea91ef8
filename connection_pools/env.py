"""Environment variables -> settings, at the path projects' settings modules import.

The code lives in :mod:`connection_pools.conf.env` (the config layer); this name is the
same module object, so ``from connection_pools import env`` keeps working unchanged.
"""

import sys

from .conf import env as _env

sys.modules[__name__] = _env
