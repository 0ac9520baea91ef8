"""Packaging: what pyproject.toml allows and what requirements.txt pins agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pinned() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"requirements.txt pins exactly: {line}"
            pins[requirement.name.lower()] = Version(spec.version)
    return pins


def test_every_dependency_of_pyproject_admits_the_pinned_version():
    pins = pinned()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        name = requirement.name.lower()
        assert name in pins, f"{name} is a dependency but requirements.txt does not pin it"
        assert requirement.specifier.contains(pins[name]), f"{line} does not admit the pinned {pins[name]}"


def test_psycopg_pool_is_held_below_the_next_minor_whose_internals_we_have_not_seen():
    # connection_pools/backends/postgresql/compat.py relies on psycopg-pool 3.3's private names.
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pool,) = [Requirement(d) for d in dependencies if Requirement(d).name == "psycopg-pool"]
    assert pool.specifier.contains("3.3.0") and not pool.specifier.contains("3.4.0")
    assert not pool.specifier.contains("3.2.9")
    import psycopg_pool

    assert pool.specifier.contains(psycopg_pool.__version__)
