"""The docs pages' scripts and styles: drf-spectacular-sidecar's Swagger UI and Redoc files, served
from the installed package by the admin API itself (admin-only, like the pages).

A fixed list of files, looked up by name: no path from the request reaches the file system, and the
project needs neither the sidecar in ``INSTALLED_APPS`` nor ``collectstatic`` for them.
"""

from __future__ import annotations

import functools
from importlib import resources

from django.http import Http404
from django.urls import reverse

#: name in the URL -> (page, role in the page, file under the sidecar's static directory).
FILES: dict[str, tuple[str, str, str]] = {
    "swagger-ui.css": ("swagger", "css", "swagger-ui-dist/swagger-ui.css"),
    "swagger-ui-bundle.js": ("swagger", "bundle", "swagger-ui-dist/swagger-ui-bundle.js"),
    "favicon-32x32.png": ("swagger", "favicon", "swagger-ui-dist/favicon-32x32.png"),
    "redoc.standalone.js": ("redoc", "bundle", "redoc/bundles/redoc.standalone.js"),
}
SIDECAR = "drf_spectacular_sidecar"
#: Seconds a browser may keep a file (they change only with the installed sidecar).
MAX_AGE = 86400


def urls(page: str) -> dict[str, str]:
    """The URLs of ``page``'s files (``swagger`` or ``redoc``) by role (``css``, ``bundle``...)."""
    return {role: reverse("connection-pools-asset", args=[name])
            for name, (owner, role, _) in FILES.items() if owner == page}


@functools.cache
def read_asset(name: str) -> bytes:
    """The bytes of the file ``name`` of :data:`FILES` (kept: a few files, read once per process);
    Http404 for any other name, or when the sidecar is not installed."""
    if name not in FILES:
        raise Http404(f"No docs asset {name[:80]!r}.")
    try:
        return resources.files(SIDECAR).joinpath("static", SIDECAR, *FILES[name][2].split("/")).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        raise Http404(f"The docs asset {name!r} is missing: install drf-spectacular-sidecar.") from None
