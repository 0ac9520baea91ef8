"""The version matrix: our suite and Django's own engine suite on every supported (Python, Django).

``make matrix`` starts the same servers as ``make test`` and runs ``nox`` with their URLs in the
environment; ``make matrix NOX_ARGS="-s 'cell(python=\\'3.13\\', django=\\'6.1\\')'"`` runs one cell
(``nox -l`` lists them). Each cell is a fresh virtualenv with the pins of ``requirements-dev.txt`` and
``requirements.txt`` except what its Django line overrides (:data:`LINES`), then:

1. our suite (``pytest``, warnings are errors, mypy included through ``tests/test_typing.py``);
2. Django's own engine suite of the installed Django (``scripts/django_suite.py``, both vocabularies).

Each cell writes ``.cache/matrix/<cell>.json``; the ``report`` session prints them as the README's table.
``make test`` is not affected: it keeps the default line (``requirements.txt``) in ``.venv``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / ".cache" / "matrix"

nox.options.sessions = ["cell", "report"]
# A cell whose Python cannot be found fails; it is never skipped silently.
nox.options.error_on_missing_interpreters = True


@dataclass(frozen=True)
class DjangoLine:
    """A supported Django line: its pins beyond requirements*.txt and the Pythons it runs on."""

    series: str
    #: Pythons this Django supports (Django's own ``requires-python``), among those we support.
    pythons: tuple[str, ...]
    #: name -> version, replacing the pin of requirements*.txt; Django itself when not the default line.
    pins: dict[str, str] = field(default_factory=dict)
    #: Packages installed without their declared requirements, with the reason.
    no_deps: dict[str, str] = field(default_factory=dict)


LINES = (
    # The default line: exactly requirements*.txt (make test runs it on 3.11).
    DjangoLine("5.2", pythons=("3.11", "3.12", "3.13")),
    DjangoLine("6.0", pythons=("3.12", "3.13"), pins={
        "Django": "6.0.10",
        # mypy checks the package against the stubs of the Django it runs on (tests/test_typing.py).
        "django-stubs": "6.0.9",
    }),
    DjangoLine("6.1", pythons=("3.12", "3.13"), pins={
        "Django": "6.1.3",
        "django-stubs": "6.1.2",
    }, no_deps={
        # Its only release with Django 6 support (2.5.0) declares Django<6.1; its 6.1 support is
        # merged upstream (django-commons/django-prometheus PR 516) but unreleased. Our suite runs
        # everything we use of it (metrics, middleware, /metrics) on 6.1 in this cell.
        "django-prometheus": "declares Django<6.1 in its latest release, 2.5.0",
    }),
)


def cells() -> list[tuple[str, str]]:
    """Every (Python, Django series) the matrix runs."""
    return [(python, line.series) for line in LINES for python in line.pythons]


def line_of(series: str) -> DjangoLine:
    (line,) = [line for line in LINES if line.series == series]
    return line


def pinned_requirements() -> dict[str, str]:
    """name -> ``name==version`` of requirements-dev.txt and the requirements.txt it includes."""
    pins: dict[str, str] = {}
    for filename in ("requirements.txt", "requirements-dev.txt"):
        for raw in (ROOT / filename).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-r"):
                continue
            name = re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0]
            pins[canonical(name)] = line
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cell_requirements(line: DjangoLine) -> tuple[list[str], list[str]]:
    """The cell's pins: (resolved together, installed afterwards without their requirements)."""
    pins = pinned_requirements()
    for name, version in line.pins.items():
        key = canonical(name)
        if key not in pins:
            raise ValueError(f"{line.series}: {name} overrides nothing in requirements*.txt")
        extras = re.search(r"\[[^\]]*\]", pins[key])  # psycopg[binary,pool] keeps its extras
        pins[key] = f"{name}{extras.group(0) if extras else ''}=={version}"
    resolved = [pin for key, pin in pins.items() if key not in {canonical(n) for n in line.no_deps}]
    alone = [pins[canonical(name)] for name in line.no_deps]
    return resolved, alone


PYTHONS = ROOT / ".nox" / ".pythons"


def find_python(version: str) -> str | None:
    """The real ``pythonX.Y`` that runs: pyenv's newest ``X.Y.*`` (its shims refuse a version that is
    installed but not selected), else the one on PATH (a virtualenv's resolved to its base)."""
    # Our own links are left out of the search, and so are pyenv's shims (they would find them).
    pyenv = shutil.which("pyenv")
    root = Path(subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
                ) if pyenv else None
    skipped = {PYTHONS, *([root / "shims"] if root else [])}
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) not in skipped)
    candidates: list[str | None] = []
    if root:
        installed = sorted(root.glob(f"versions/{version}.*/bin/python{version}"),
                           key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])])
        candidates += [str(p) for p in reversed(installed)]
    candidates.append(shutil.which(f"python{version}", path=search))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True, check=False,
                                        env={**os.environ, "PATH": search}).returncode == 0:
            return os.path.realpath(candidate)
    return None


def expose_pythons() -> None:
    """Put each matrix Python on PATH under its own name only (``.nox/.pythons/pythonX.Y``), for nox."""
    PYTHONS.mkdir(parents=True, exist_ok=True)
    for version in sorted({python for line in LINES for python in line.pythons}):
        link = PYTHONS / f"python{version}"
        found = find_python(version)
        if found and link.is_symlink() and os.readlink(link) == found:
            continue  # as it is: a cell running now may be looking it up
        if link.is_symlink() or link.exists():
            link.unlink()
        if found:
            link.symlink_to(found)
    os.environ["PATH"] = os.pathsep.join([str(PYTHONS), os.environ.get("PATH", "")])


expose_pythons()


def cell_id(python: str, django: str) -> str:
    return f"py{python}-django{django}"


@nox.session
@nox.parametrize(["python", "django"], [nox.param(py, dj, id=cell_id(py, dj)) for py, dj in cells()])
def cell(session: nox.Session, django: str) -> None:
    """One cell: install its pins, run our suite, then Django's own engine suite."""
    line = line_of(django)
    resolved, alone = cell_requirements(line)
    requirements = Path(session.create_tmp()) / "requirements.txt"
    requirements.write_text("\n".join(resolved) + "\n")
    session.install("--quiet", "--upgrade", "pip")
    session.install("--quiet", "-r", str(requirements))
    for pin in alone:
        session.install("--quiet", "--no-deps", pin)
    python = str(session.python)
    RESULTS.mkdir(parents=True, exist_ok=True)
    junit = RESULTS / f"{cell_id(python, django)}.junit.xml"
    django_report = RESULTS / f"{cell_id(python, django)}.django-suite.json"
    for stale in (junit, django_report):
        stale.unlink(missing_ok=True)
    versions = session.run("python", "-c", "import django, platform; print(platform.python_version(), "
                           "django.get_version())", silent=True).split()
    started = time.monotonic()
    ours_failed = False
    try:
        session.run("python", "-m", "pytest", f"--junitxml={junit}", *session.posargs)
    except nox.command.CommandFailed:
        ours_failed = True
    ours_seconds = time.monotonic() - started
    django_failed = False
    try:
        session.run("python", "scripts/django_suite.py", f"--report={django_report}")
    except nox.command.CommandFailed:
        django_failed = True
    record = {
        "cell": cell_id(python, django),
        "python": versions[0],
        "django": versions[1],
        "commit": commit(),
        "ours": suite_counts(junit) | {"seconds": round(ours_seconds)},
        "django_suite": json.loads(django_report.read_text()) if django_report.is_file() else None,
        "no_deps": line.no_deps,
        "pins": line.pins,
        "machine": platform.machine(),
    }
    (RESULTS / f"{cell_id(python, django)}.json").write_text(json.dumps(record, indent=2) + "\n")
    if ours_failed or django_failed:
        session.error("our suite failed" if ours_failed else "Django's suite failed")


def suite_counts(junit: Path) -> dict[str, int | None]:
    """passed/failed/errors/skipped of pytest's JUnit report (all None when pytest wrote none)."""
    if not junit.is_file():
        return {"passed": None, "failed": None, "errors": None, "skipped": None}
    suite = ElementTree.parse(junit).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    assert suite is not None
    tests, failed, errors, skipped = (int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped"))
    return {"passed": tests - failed - errors - skipped, "failed": failed, "errors": errors, "skipped": skipped}


def commit() -> str:
    """HEAD's short hash, ``+`` when the work tree has changes (the table says what it measured)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    return head + ("+" if dirty else "")


@nox.session(python=False)
def report(session: nox.Session) -> None:
    """Print the matrix table (README, "Supported versions") from the cells' ``.cache/matrix/*.json``."""
    print(table(), flush=True)


def table() -> str:
    rows = ["| Python | Django | our suite: passed / failed / errors / skipped | time | Django's suite: tests, "
            "failures + errors (psycopg names; guide's) | commit |",
            "| --- | --- | --- | --- | --- | --- |"]
    for python, django in cells():
        path = RESULTS / f"{cell_id(python, django)}.json"
        if not path.is_file():
            rows.append(f"| {python} | {django} | not run | | | |")
            continue
        record = json.loads(path.read_text())
        ours = record["ours"]
        counts = " / ".join("?" if ours[k] is None else str(ours[k]) for k in ("passed", "failed", "errors", "skipped"))
        runs = record["django_suite"] or []
        theirs = "; ".join(f"{run['tests']}, {run['failures'] + run['errors']}" for run in runs) or "not run"
        rows.append(f"| {record['python']} | {record['django']} | {counts} | {ours['seconds'] // 60} min "
                    f"{ours['seconds'] % 60:02d} s | {theirs} | {record['commit']} |")
    return "\n".join(rows)
