"""What every admin API view and docs page shares, chosen per view so the adopter's DRF settings
(``REST_FRAMEWORK``) need nothing for them and cannot break them:

* drf-spectacular's ``AutoSchema`` whatever ``DEFAULT_SCHEMA_CLASS`` says (the view's ``schema``, and
  :func:`extend_schema` for its methods: drf-spectacular's own builds on ``DEFAULT_SCHEMA_CLASS``);
* token authentication only when ``rest_framework.authtoken`` is installed (its ``Token`` model needs
  the app: a ``Token`` header would otherwise be a 500), then session authentication;
* JSON, plus DRF's browsable API when ``rest_framework`` is installed (its templates need the app).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.apps import apps
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema as spectacular_extend_schema
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.schemas.inspectors import ViewInspector

F = TypeVar("F", bound=Callable[..., Any])

TOKEN_APP = "rest_framework.authtoken"
BROWSABLE_APP = "rest_framework"


def authentication_classes() -> list[type[BaseAuthentication]]:
    """Token (when its app is installed), then session authentication."""
    token: list[type[BaseAuthentication]] = [TokenAuthentication] if apps.is_installed(TOKEN_APP) else []
    return [*token, SessionAuthentication]


def renderer_classes() -> list[type[BaseRenderer]]:
    """JSON, and the browsable API when ``rest_framework`` is installed."""
    browsable: list[type[BaseRenderer]] = [BrowsableAPIRenderer] if apps.is_installed(BROWSABLE_APP) else []
    return [JSONRenderer, *browsable]


def extend_schema(**kwargs: Any) -> Callable[[F], F]:
    """drf-spectacular's ``extend_schema`` for a view method, built on its ``AutoSchema``: the original
    takes ``DEFAULT_SCHEMA_CLASS`` as the base, which in a project without drf-spectacular's settings is
    DRF's own and breaks the schema ("Incompatible AutoSchema")."""

    def decorator(method: F) -> F:
        method.schema = AutoSchema  # type: ignore[attr-defined]  # the base extend_schema looks for first
        return spectacular_extend_schema(**kwargs)(method)

    return decorator


class SpectacularSchema(ViewInspector):
    """``view.schema``: a fresh drf-spectacular ``AutoSchema`` bound to the view (as DRF's ``DefaultSchema``
    makes one of ``DEFAULT_SCHEMA_CLASS``), so the project may use any schema class for its own views."""

    def __get__(self, instance: Any, owner: Any) -> Any:
        result = super().__get__(instance, owner)  # an instance's own schema, if one was set
        if not isinstance(result, SpectacularSchema):
            return result
        inspector = AutoSchema()
        inspector.view = instance
        return inspector


class AdminAccessMixin:
    """Per-view schema, authentication and renderers (the module docstring says why)."""

    schema = SpectacularSchema()

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [cls() for cls in authentication_classes()]

    def get_renderers(self) -> list[BaseRenderer]:
        return [cls() for cls in renderer_classes()]
