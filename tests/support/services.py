"""Drive the local services (scripts/devservices) from tests: stop and start servers
for fault injection. Uses the same env (ports, data dir) as the test run."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVSERVICES = ROOT / "scripts" / "devservices"


def devservices(action: str, target: str = "all", *, timeout: float = 120) -> str:
    """Run ``scripts/devservices ACTION TARGET`` and return its output; raise on failure."""
    result = subprocess.run(
        ["bash", str(DEVSERVICES), action, target],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"devservices {action} {target} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def stop(target: str) -> None:
    """Stop one server: ``primary``, ``replica`` or ``redis``."""
    devservices("stop", target)


def start(target: str) -> None:
    """Start one server and wait until it answers."""
    devservices("start", target)
