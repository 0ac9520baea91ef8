"""gunicorn reads this file from the working directory: a plain ``gunicorn project.wsgi`` gets the
project's worker settings and hooks too (they live in project/gunicorn_conf.py)."""

from project.gunicorn_conf import *  # noqa: F403
