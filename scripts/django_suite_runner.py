"""Django's test runner for ``scripts/django_suite.py``'s ``transaction`` run: Django's own
``DiscoverRunner``, with the tests whose premise ``release = "transaction"`` changes on purpose
skipped, each with its reason (as a backend's ``django_test_skips`` would).

Every other test of the labels runs unchanged; the reasons are the two documented differences
(docs/postgresql-pools.md, "Per-transaction release").
"""

from __future__ import annotations

from typing import Any
from unittest import skip

from django.test.runner import DiscoverRunner
from django.utils.module_loading import import_string

#: Reason -> the tests (dotted ``module.Class.method``) whose premise the release changes.
KNOWN_DIFFERENCES: dict[str, tuple[str, ...]] = {
    "release 'transaction' refuses session state: a plain SET would outlive the transaction on a pooled "
    "connection (as behind PgBouncer)": (
        "postgres_tests.test_unaccent.UnaccentTest.test_unaccent_with_conforming_strings_off",
    ),
    "release 'transaction': connection.connection is None between statements (the test compares the "
    "driver connections each thread's wrapper keeps after a cursor)": (
        "backends.tests.ThreadTests.test_default_connection_thread_local",
    ),
}


class KnownDifferencesRunner(DiscoverRunner):
    """``DiscoverRunner`` skipping :data:`KNOWN_DIFFERENCES`."""

    def build_suite(self, *args: Any, **kwargs: Any) -> Any:
        suite = super().build_suite(*args, **kwargs)
        for reason, names in KNOWN_DIFFERENCES.items():
            for name in names:
                class_path, _, method = name.rpartition(".")
                try:
                    test_case = import_string(class_path)
                except ImportError:
                    continue  # a label that was not asked for (its app is not installed)
                setattr(test_case, method, skip(reason)(getattr(test_case, method)))
        return suite
