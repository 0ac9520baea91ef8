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
  has a failure or an error.

``make test`` runs it after pytest (``make django-suite`` alone).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
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
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
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


def run(vocabulary: str, tests: Path, labels: list[str], parallel: int) -> int:
    """One run of Django's suite with the pool said in ``vocabulary``; its exit status."""
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
        status = subprocess.run(
            [sys.executable, "-W", "ignore", "runtests.py", f"--settings={module}", f"--parallel={parallel}",
             "--noinput", "--verbosity=1", *labels],
            cwd=tests, env=env, check=False,
        ).returncode
        print(f"django_suite: {vocabulary} vocabulary finished in {time.monotonic() - started:.0f} s "
              f"(exit status {status})", flush=True)
        return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocabulary", choices=[*VOCABULARIES, *GROUPS], default="all")
    parser.add_argument("--parallel", type=int, default=max(os.cpu_count() or 1, 1))
    parser.add_argument("labels", nargs="*", default=list(LABELS))
    args = parser.parse_args()
    tests = django_tests_dir(django_version())
    vocabularies = list(GROUPS.get(args.vocabulary, (args.vocabulary,)))
    statuses = [run(vocabulary, tests, args.labels, args.parallel) for vocabulary in vocabularies]
    return 0 if not any(statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
