"""Shared fixtures. The suite runs against the real PostgreSQL primary + replica and
the real Redis that scripts/devservices starts (``make test`` does it)."""

from __future__ import annotations

import pytest

from tests.support.pg import pooled  # noqa: F401 - the pool tests' factory fixture


@pytest.fixture
def gunicorn_server():
    """Factory: ``with gunicorn_server(workers=3) as server: ...`` (real processes)."""
    from tests.support.server import GunicornServer

    return GunicornServer
