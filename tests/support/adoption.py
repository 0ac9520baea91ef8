"""docs/adopting.md's marked blocks (``<!-- adopt: NAME -->`` before a fenced block), and a fresh
``django-admin startproject`` project they are applied to, run in its own virtualenv."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "adopting.md"
_BLOCK = re.compile(r"<!-- adopt: (\w+) -->\n```(\w+)\n(.*?)```", re.S)


def blocks(text: str | None = None) -> dict[str, str]:
    """The marked blocks of the doc by name (each name once)."""
    found: dict[str, str] = {}
    for name, _language, body in _BLOCK.findall(DOC.read_text() if text is None else text):
        assert name not in found, f"docs/adopting.md marks two blocks {name!r}"
        found[name] = body
    return found


def install_arguments(install: str, wheel: Path) -> list[str]:
    """The ``pip install`` line of the install block, with the package's name replaced by the wheel."""
    (line,) = [line for line in install.splitlines() if line.startswith("pip install ")]
    words = [word.strip('"') for word in line.split()[2:]]
    assert "django-connection-pools" in words, line
    return [str(wheel) if word == "django-connection-pools" else word for word in words]


class FreshProject:
    """``startproject adopter`` in ``where``, run with the virtualenv's Python and ``env`` only."""

    def __init__(self, venv: Path, where: Path, env: Mapping[str, str]) -> None:
        self.venv = venv
        self.where = where
        self.env = dict(env)
        self.python = venv / "bin" / "python"
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = where / "server.log"

    @property
    def package(self) -> Path:
        return self.where / "adopter"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``args`` in the project's directory (``manage.py ...`` or ``-c ...``)."""
        result = subprocess.run([str(self.python), *args], cwd=self.where, env=self.env, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def manage(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("manage.py", *args, **kwargs)  # type: ignore[arg-type]

    def serve(self, timeout: float = 60) -> str:
        """``manage.py runserver`` (no reloader) on a free port; its base URL once it answers."""
        self.port = free_port()
        log = open(self.log, "wb")
        self.server = subprocess.Popen(
            [str(self.python), "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"], cwd=self.where,
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"runserver exited:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url + "/admin/login/", timeout=5) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"runserver did not answer in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, 15)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, 9)
                self.server.wait(timeout=10)
        self.server = None
