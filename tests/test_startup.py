"""Every start path stops on a bad setting with one sentence on stderr and a non-zero exit: no traceback.

``manage.py``, ``gunicorn project.wsgi`` (with the project's config, with an empty config
so that only the WSGI module itself can catch it, and with ``--preload``), and a plain
``import project.wsgi`` / ``import project.asgi``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT

BAD_VALUES = {
    "DATABASE_POOL_SIZE": ("ten", "Environment variable DATABASE_POOL_SIZE='ten' is invalid"),
    "CONNECTION_POOLS_LOG_LEVEL": ("loud", "Environment variable CONNECTION_POOLS_LOG_LEVEL='loud' is invalid"),
    "REDIS_URL": ("redis://:pw/with/slashes@127.0.0.1:6379/0", "Environment variable REDIS_URL='redis://:***@"),
}


def run(command: list[str], variable: str, *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    value, _ = BAD_VALUES[variable]
    return subprocess.run(command, cwd=cwd, env={**os.environ, variable: value}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def assert_one_sentence(result: subprocess.CompletedProcess[str], variable: str) -> None:
    _, sentence = BAD_VALUES[variable]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    mentions = [line for line in result.stderr.splitlines() if "ImproperlyConfigured" in line]
    assert len(mentions) == 1 and sentence in mentions[0], result.stderr[-3000:]
    assert "pw/with/slashes" not in result.stderr + result.stdout


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
@pytest.mark.parametrize("module", ["project.wsgi", "project.asgi"])
def test_importing_the_application_module(module: str, variable: str) -> None:
    result = run([sys.executable, "-c", f"import {module}"], variable)
    assert_one_sentence(result, variable)
    assert result.stderr.strip().startswith("ImproperlyConfigured: ")  # and nothing else
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_manage_py(variable: str) -> None:
    assert_one_sentence(run([sys.executable, "manage.py", "check"], variable), variable)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["project default", "project explicit", "empty", "empty preload"])
def test_gunicorn(config: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty_gunicorn_conf.py"
    empty.write_text("")
    args = {
        "project default": [],  # gunicorn reads ./gunicorn.conf.py
        "project explicit": ["--config", "python:project.gunicorn_conf"],
        "empty": ["--config", str(empty)],  # no hook: the worker's import of project.wsgi must say it
        "empty preload": ["--config", str(empty), "--preload"],
    }[config]
    command = [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", "127.0.0.1:0", "--workers", "1", *args]
    assert_one_sentence(run(command, "DATABASE_POOL_SIZE"), "DATABASE_POOL_SIZE")
