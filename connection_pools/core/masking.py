"""Hiding secrets in what people see: URL passwords, ``password=...`` in DSN text, secret-named keys.

Used by start-up errors (:mod:`connection_pools.env`), the ``config`` endpoint
(:mod:`connection_pools.service`), log lines naming a server and the debug page
(:mod:`connection_pools.debug`).

A URL's credentials are found from the *last* ``@`` after ``://``, not with
``urlsplit``: a password holding an unencoded ``/``, ``?``, ``#`` or ``@`` ends the
netloc early for ``urlsplit``, which would then see no password at all and leave it
in plain sight.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

MASK = "***"
#: Keys whose values are secrets, whatever they hold (matched case-insensitively, as substrings).
SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "credential", "api_key", "apikey", "private")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SECRET_IN_TEXT = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword)\s*=\s*('[^']*'|[^&\s]*)")
#: One ``key=value`` of a URL's query string (the key as written, maybe percent-encoded).
_QUERY_PARAMETER = re.compile(r"(?<=[?&;])([^=&;#\s?]+)=([^&;#\s]*)")


def _mask_user_info(user_info: str) -> str:
    # "user:password" keeps the user; a lone user-info may be a password (some clients read it so).
    user, colon, _ = user_info.partition(":")
    return f"{user}:{MASK}" if colon else MASK


def mask_url(url: str) -> str:
    """``url`` (one URL) with its password replaced by ``***``, whatever characters the password holds.

    Without ``://`` the text is not a URL, but an ``@`` still suggests credentials:
    everything before the last one is hidden.
    """
    at = url.rfind("@")
    start = url.find("://")
    if at < 0:
        return url
    if start < 0 or at < start:
        return MASK + url[at:]
    start += 3
    return url[:start] + _mask_user_info(url[start:at]) + url[at:]


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL in it masked (URLs may be comma-separated or in prose).

    Each URL runs to the next ``scheme://``; within it the last ``@`` ends the
    credentials, so a password is hidden even when it holds a raw ``,`` ``/`` or ``@``
    (at worst, a little more than the password is hidden).
    """
    starts = [match.start() for match in _SCHEME.finditer(text)]
    if not starts:
        return text
    pieces = [text[: starts[0]]]
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        pieces.append(mask_url(text[start:end]))
    return "".join(pieces)


def _mask_query_parameter(match: re.Match[str]) -> str:
    # Clients decode the key before reading it (redis-py logs in with ``?pass%77ord=``).
    key = match.group(1)
    return f"{key}={MASK}" if is_secret_key(unquote_plus(key)) else match.group(0)


def mask_text(text: str) -> str:
    """A string with any URL password, any ``password=...`` and any query parameter whose
    (decoded) name is a secret's replaced by ``***``."""
    if "://" in text:
        text = mask_urls(text)
    if "=" not in text:
        return text
    text = _QUERY_PARAMETER.sub(_mask_query_parameter, text)
    return _SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}={MASK}", text)


def is_secret_key(key: str) -> bool:
    """Whether a settings key names a secret (``PASSWORD``, ``api_token``...)."""
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask(value: Any, key: str = "") -> Any:
    """A deep copy of ``value`` with every secret masked (by key name, in URLs and in DSN text)."""
    if is_secret_key(key) and not isinstance(value, dict | list | tuple | bool):
        return MASK if value not in (None, "") else value
    if isinstance(value, dict):
        return {str(k): mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(item, key) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask_text(str(value))  # paths, classes: shown as text, still masked
