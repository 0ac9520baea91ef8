"""ASGI entry point."""

from django.core.asgi import get_asgi_application

from project.startup import start

application = start(get_asgi_application)
