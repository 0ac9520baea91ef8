"""The settings mypy's django-stubs plugin loads (``[tool.django-stubs]`` in ``pyproject.toml``).

The plugin imports the settings and runs ``django.setup()`` to learn the models; it contacts no
server. The project's settings refuse to load without ``SECRET_KEY`` outside DEBUG, so on a
fresh clone (``make lint``, CI) the type checker loads them in DEBUG, with the development key.
"""

from __future__ import annotations

import os

if not os.environ.get("SECRET_KEY"):
    os.environ["DEBUG"] = "true"

from project.settings import *  # noqa: F403 - the project's settings, unchanged
