"""Packaging: what pyproject.toml allows, what requirements.txt pins and what the version matrix runs agree."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
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


def load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def matrix() -> Any:
    """noxfile.py as a module, loaded once (nox registers its sessions); it puts the matrix Pythons on
    PATH when loaded, which is undone here."""
    path = os.environ.get("PATH", "")
    try:
        return load(ROOT / "noxfile.py", "noxfile_under_test")
    finally:
        os.environ["PATH"] = path


def test_the_supported_versions_of_pyproject_are_the_matrix_cells(matrix: Any) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    classifiers = project["classifiers"]
    djangos = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")}
    version_classifier = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    pythons = {m.group(1) for m in map(version_classifier.fullmatch, classifiers) if m}
    assert djangos == {line.series for line in matrix.LINES}
    assert pythons == {python for line in matrix.LINES for python in line.pythons}
    requires_python = SpecifierSet(project["requires-python"])
    assert all(requires_python.contains(f"{python}.0") for python in pythons)
    (django,) = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "Django"]
    for line in matrix.LINES:
        version = line.pins.get("Django", str(pinned()["django"]))
        assert Version(version).release[:2] == tuple(map(int, line.series.split("."))), line
        assert django.specifier.contains(version), f"{django} does not admit {version}, a matrix cell"
    newest = max(Version(line.series) for line in matrix.LINES)
    assert not django.specifier.contains(f"{newest.major}.{newest.minor + 1}.0"), "a Django no cell runs is admitted"


def test_a_cell_replaces_the_pins_of_its_line_and_keeps_the_rest(matrix: Any) -> None:
    line = matrix.DjangoLine("9.9", pythons=("3.13",), pins={"Django": "9.9.1", "psycopg": "3.3.10"},
                             no_deps={"django-prometheus": "caps Django below 9.9"})
    resolved, alone = matrix.cell_requirements(line)
    assert "Django==9.9.1" in resolved and f"Django=={pinned()['django']}" not in resolved
    assert "psycopg[binary,pool]==3.3.10" in resolved  # extras kept
    assert alone == [f"django-prometheus=={pinned()['django-prometheus']}"]
    assert not [pin for pin in resolved if pin.startswith("django-prometheus")]
    assert f"pytest=={matrix.pinned_requirements()['pytest'].split('==')[1]}" in resolved  # dev pins too
    with pytest.raises(ValueError, match="overrides nothing"):
        matrix.cell_requirements(matrix.DjangoLine("9.9", pythons=("3.13",), pins={"not-a-dependency": "1"}))


def test_the_django_suite_reads_the_runners_counts(tmp_path: Path) -> None:
    # A real run of Django's test runner with one of each outcome, read as scripts/django_suite.py
    # reads Django's own suite.
    (tmp_path / "test_outcomes.py").write_text(textwrap.dedent("""
        import unittest

        class Outcomes(unittest.TestCase):
            def test_passes(self): pass
            def test_fails(self): self.fail("no")
            def test_errors(self): raise RuntimeError("no")
            @unittest.skip("no")
            def test_skipped(self): pass
            @unittest.expectedFailure
            def test_expected(self): self.fail("no")
    """))
    runner = ("import django; from django.conf import settings; settings.configure(); django.setup(); "
              "from django.test.runner import DiscoverRunner; DiscoverRunner().run_tests(['test_outcomes'])")
    output = subprocess.run([sys.executable, "-c", runner], cwd=tmp_path, capture_output=True, text=True, check=False,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": ""})
    suite = load(ROOT / "scripts" / "django_suite.py", "django_suite_under_test")
    result = suite.RunResult(vocabulary="psycopg", django="x", status=output.returncode)
    for line in (output.stdout + output.stderr).splitlines():
        suite.read_summary(result, line.strip())
    assert (result.tests, result.failures, result.errors, result.skipped, result.expected_failures) == (5, 1, 1, 1, 1)
    assert result.ran in (4, 5), output.stderr  # Python 3.12.1's unittest leaves the skipped test out
