"""ASGI entry point: Django's ASGI handler with request threads reused (connection_pools.asgi)."""

from connection_pools.asgi import get_asgi_application
from project.startup import start

application = start(get_asgi_application)
