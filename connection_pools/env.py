"""Environment variables -> settings, at the path projects' settings modules import.

The code lives in :mod:`connection_pools.conf.env` (the config layer); this name is the
same module object, so ``from connection_pools import env`` keeps working unchanged.
"""

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what a type checker sees here: the same names
    from .conf.env import *  # noqa: F403
else:
    from .conf import env as _env

    sys.modules[__name__] = _env
