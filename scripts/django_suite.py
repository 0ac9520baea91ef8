#!/usr/bin/env python3
"""Run Django's own test suite against our engine, as a drop-in check.

``python scripts/django_suite.py [--vocabulary psycopg|guide|transaction|both|all] [--parallel N] [labels...]``

* downloads the sdist of the installed (pinned) Django with pip, once, into
  ``.cache/django-suite/`` (git-ignored), and unpacks its ``tests/`` folder;
* writes a settings module whose ``default`` and ``other`` databases use
  ``connection_pools.backends.postgresql`` on the server of ``DATABASE_URL``, pooled with
  Django's own option names (``min_size``/``max_size``) or the guide's
  (``pool_size``/``max_overflow``), and once more with ``release = "transaction"`` (connections
  back after each statement outside a transaction: ``TestCase`` wraps its tests in ``atomic()``,
  ``TransactionTestCase`` exercises the release);
* runs Django's ``runtests.py`` on the labels the engine touches, once per vocabulary
  (``all``, the default: the three runs; ``both``: the first two), and exits non-zero if any run
  has a failure or an error (``--report FILE`` also writes each run's counts as JSON, for the
  version matrix).

Whatever Django is installed (the default line's pin, or a matrix cell's: ``noxfile.py``), its own
sdist's tests run: each Django release tests its own engine. The labels are checked against that
release's ``tests/``, so a label a release renames or drops stops the run rather than shrinking it.

``make test`` runs it after pytest (``make django-suite`` alone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "django-suite"

#: The test labels that exercise a database engine (connections, transactions, queries).
LABELS = (
    "backends", "transactions", "transaction_hooks", "db_utils", "basic", "queries", "select_for_update",
    "get_or_create", "delete", "update", "bulk_create", "aggregation", "expressions", "postgres_tests",
)

#: OPTIONS["pool"] per vocabulary: the same pool, said Django's (psycopg's) way and the guide's.
VOCABULARIES = {
    "psycopg": {"min_size": 2, "max_size": 8},
    "guide": {"pool_size": 2, "max_overflow": 6},
    "transaction": {"min_size": 2, "max_size": 8, "release": "transaction"},
}
GROUPS = {"both": ("psycopg", "guide"), "all": tuple(VOCABULARIES)}

SETTINGS_TEMPLATE = '''\
"""Settings for Django's test suite on connection_pools' engine ({vocabulary} vocabulary)."""

# This release's own test settings (tests/test_sqlite.py: DEFAULT_AUTO_FIELD, USE_TZ... differ by
# release), with its databases replaced by ours.
from test_sqlite import *  # noqa: F403

_DB = {{
    "ENGINE": "connection_pools.backends.postgresql",
    "HOST": {host!r},
    "PORT": {port!r},
    "USER": {user!r},
    "PASSWORD": {password!r},
    "OPTIONS": {{"pool": {pool!r}}},
}}
DATABASES = {{
    "default": {{**_DB, "NAME": "django_suite"}},
    "other": {{**_DB, "NAME": "django_suite_other"}},
}}
{extra}'''

#: What each vocabulary's settings add: the transaction run skips the tests whose premise the release
#: changes on purpose (scripts/django_suite_runner.py lists them, with the reasons).
EXTRA_SETTINGS = {"transaction": 'TEST_RUNNER = "django_suite_runner.KnownDifferencesRunner"\n'}


def django_version() -> str:
    """The installed Django's version (requirements.txt pins it)."""
    import django

    return django.get_version()


def django_tests_dir(version: str) -> Path:
    """Django's ``tests/`` folder of ``version``, downloaded and unpacked once."""
    target = CACHE / f"django-{version}"
    tests = target / "tests"
    if (tests / "runtests.py").is_file():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"django-{version}.tar.gz"
    if not sdist.is_file():
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "--no-binary", ":all:", f"django=={version}", "-d", scratch],
                check=True,
            )
            (downloaded,) = Path(scratch).glob("*.tar.gz")
            shutil.move(str(downloaded), sdist)
    prefix = f"django-{version}/tests/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        archive.extractall(partial, members=members, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    (partial / f"django-{version}").rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return tests


def server_from_env() -> dict[str, str]:
    """Host, port, user and password of ``DATABASE_URL`` (the primary ``make test`` starts)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("django_suite: DATABASE_URL is not set (run it through `make django-suite`).")
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }


@dataclass
class RunResult:
    """One run of Django's suite, from its runner's ``Found N test(s).`` and unittest's closing lines."""

    vocabulary: str
    django: str
    status: int
    #: Tests found by Django's runner: the same count whatever the Python (unittest's ``Ran N`` left
    #: skipped tests out in Python 3.12.1 only).
    tests: int = 0
    ran: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    expected_failures: int = 0
    seconds: float = 0.0


def read_summary(result: RunResult, line: str) -> None:
    """Fill ``result`` from Django's ``Found N test(s).`` and unittest's ``Ran N tests in Xs`` and
    ``OK (...)`` / ``FAILED (...)`` lines."""
    found = re.match(r"Found (\d+) test\(s\)\.$", line)
    if found:
        result.tests = int(found.group(1))
        return
    ran = re.match(r"Ran (\d+) tests? in ([\d.]+)s", line)
    if ran:
        result.ran, result.seconds = int(ran.group(1)), float(ran.group(2))
        return
    closing = re.match(r"(OK|FAILED)(?: \((.*)\))?$", line)
    if closing and closing.group(2):
        for name, count in re.findall(r"([a-z ]+)=(\d+)", closing.group(2)):
            setattr(result, name.strip().replace(" ", "_"), int(count))


def check_labels(tests: Path, labels: list[str]) -> None:
    """Every label is a test package of this Django release (else one sentence, exit status 2)."""
    missing = [label for label in labels if not (tests / label.split(".")[0]).is_dir()]
    if missing:
        sys.exit(f"django_suite: Django {django_version()}'s tests have no {', '.join(missing)}: "
                 f"update LABELS in {Path(__file__).name} for this release.")


def run(vocabulary: str, tests: Path, labels: list[str], parallel: int) -> RunResult:
    """One run of Django's suite with the pool said in ``vocabulary``; its counts and exit status."""
    with tempfile.TemporaryDirectory(prefix="django-suite-") as folder:
        module = f"django_suite_settings_{vocabulary}"
        Path(folder, f"{module}.py").write_text(
            SETTINGS_TEMPLATE.format(vocabulary=vocabulary, pool=VOCABULARIES[vocabulary],
                                     extra=EXTRA_SETTINGS.get(vocabulary, ""), **server_from_env())
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([folder, str(ROOT), str(ROOT / "scripts")])}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        print(f"django_suite: Django {django_version()}, {vocabulary} vocabulary "
              f"(OPTIONS['pool'] = {VOCABULARIES[vocabulary]}), labels: {' '.join(labels)}", flush=True)
        started = time.monotonic()
        # unittest's output is passed through as it comes, and its closing lines read on the way.
        with subprocess.Popen(
            [sys.executable, "-W", "ignore", "runtests.py", f"--settings={module}", f"--parallel={parallel}",
             "--noinput", "--verbosity=1", *labels],
            cwd=tests, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        ) as process:
            result = RunResult(vocabulary=vocabulary, django=django_version(), status=0)
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                read_summary(result, line.strip())
            sys.stdout.flush()
        result.status = process.returncode
        print(f"django_suite: {vocabulary} vocabulary finished in {time.monotonic() - started:.0f} s "
              f"(exit status {result.status}; {result.tests} tests, {result.failures} failures, "
              f"{result.errors} errors, {result.skipped} skipped)", flush=True)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocabulary", choices=[*VOCABULARIES, *GROUPS], default="all")
    parser.add_argument("--parallel", type=int, default=max(os.cpu_count() or 1, 1))
    parser.add_argument("--report", type=Path, help="write each run's counts to this JSON file")
    parser.add_argument("labels", nargs="*", default=list(LABELS))
    args = parser.parse_args()
    tests = django_tests_dir(django_version())
    check_labels(tests, args.labels)
    vocabularies = list(GROUPS.get(args.vocabulary, (args.vocabulary,)))
    results = [run(vocabulary, tests, args.labels, args.parallel) for vocabulary in vocabularies]
    if args.report:
        args.report.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    # A run that found or ran nothing (an import error before the first test) fails too.
    return 0 if all(result.status == 0 and result.tests > 0 and result.ran > 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
