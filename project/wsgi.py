"""WSGI entry point (gunicorn project.wsgi)."""

from django.core.wsgi import get_wsgi_application

from project.startup import start

application = start(get_wsgi_application)
