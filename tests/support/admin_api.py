"""Helpers for the admin API tests: users, tokens, an isolated Redis key prefix."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

API = "/api/v1/admin/connection-pools/"


def make_user(*, staff: bool) -> tuple[Any, str]:
    """A user (staff or not) and its API token key."""
    name = f"{'staff' if staff else 'user'}-{uuid.uuid4().hex[:8]}"
    user = get_user_model().objects.create_user(name, password=None, is_staff=staff)  # no hashing: fast
    return user, Token.objects.create(user=user).key


def unique_prefix(label: str = "test") -> str:
    """A Redis key prefix no other test (or server) shares."""
    return f"cp-{label}-{uuid.uuid4().hex[:10]}"
