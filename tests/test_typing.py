"""The package type-checks with mypy in strict mode (``[tool.mypy]`` in ``pyproject.toml``).

CI runs exactly ``make test``, so the type check is part of the suite: a type error anywhere in
``connection_pools`` fails this test with mypy's report. ``make lint`` runs the same command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_connection_pools_is_clean_under_mypy_strict() -> None:
    # The files, the strict flags and the django-stubs settings module all come from pyproject.toml.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=240,
                            check=False)
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout
