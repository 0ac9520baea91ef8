"""Settings of the example project. Everything tunable comes from the environment
(see ``connection_pools.env`` and the README's table); the servers default to the ones
``scripts/devservices`` runs (``project/dev_services.py``)."""

from __future__ import annotations

from pathlib import Path

from connection_pools import env
from project import dev_services

BASE_DIR = Path(__file__).resolve().parent.parent
# Lower case: not a setting (it holds the URLs with their passwords).
_environ = dev_services.environ()

DEBUG = env.env_bool(_environ, "DEBUG", False)
SECRET_KEY = env.secret_key(_environ, debug=DEBUG)
ALLOWED_HOSTS = env.allowed_hosts(_environ)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "connection_pools",
    "project.workload",
]

# Django's and django-prometheus' own middleware, declared sync-only (project/middleware.py): under
# ASGI Django runs the whole chain, ours included, as one block on the request's thread instead of
# a thread hop per hook.
MIDDLEWARE = [
    "project.middleware.PrometheusBeforeMiddleware",
    # The one request context: accounting, read-your-writes pinning, replay, 503s (docs/asgi.md).
    "connection_pools.middleware.RequestContextMiddleware",
    "project.middleware.SecurityMiddleware",
    "project.middleware.SessionMiddleware",
    "project.middleware.CommonMiddleware",
    "project.middleware.CsrfViewMiddleware",
    "project.middleware.AuthenticationMiddleware",
    "project.middleware.MessageMiddleware",
    "project.middleware.XFrameOptionsMiddleware",
    "project.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The DEBUG page and error e-mails hide URL passwords too (cache LOCATION, pool URLs, ...).
DEFAULT_EXCEPTION_REPORTER_FILTER = "connection_pools.debug.CredentialCleansingFilter"
DEFAULT_EXCEPTION_REPORTER = "connection_pools.debug.CredentialCleansingReporter"

WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

# PostgreSQL primary ("default") and replicas ("replica1", ...) from DATABASE_URL
# and DATABASE_REPLICA_URLS, on our pooled engine.
DATABASES = env.databases(_environ)
DATABASE_ROUTERS = ["connection_pools.routers.ReplicaRouter"]

# The guide's pool settings (DATABASE_POOL_*, REDIS_*), validated.
CONNECTION_POOLS = env.connection_pools(_environ)

# Django's cache framework on the Redis cache pool (django-redis).
CACHES = env.caches(CONNECTION_POOLS["REDIS"])

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The example project serves its own static files (admin CSS, dashboard JS) so
# it works without a front web server; turn off behind one.
SERVE_STATIC = env.env_bool(_environ, "SERVE_STATIC", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
}
# The admin API needs none of drf-spectacular's settings or apps: its views bring their own schema
# class, templates and assets (docs/adopting.md).

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "connection_pools": {"level": env.log_level(_environ)},
    },
}
