# Two commands do everything on a fresh machine:
#   make run    - set up, start PostgreSQL (primary + replica), Redis and PgBouncer, migrate, serve on 127.0.0.1:8000
#                 (make run ASGI=1: the same under ASGI, on uvicorn workers)
#   make test   - set up, start the services, run the full test suite
#   make matrix - the same on every supported (Python, Django): noxfile.py, one virtualenv per cell
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-$(shell cat requirements.txt requirements-dev.txt requirements-bench.txt | sha1sum | cut -c1-12)
SERVICES := scripts/devservices
WITH_ENV := set -a && eval "$$($(SERVICES) env)" && SECRET_KEY="$${SECRET_KEY:-$$(scripts/secret-key)}" && set +a &&
WORKERS ?= 3
ASGI ?= 0

.PHONY: help venv system-deps services services-stop stop status run test django-suite matrix lint bench clean

help:
	@echo "make run     set up everything and serve on http://127.0.0.1:8000 (ASGI=1: under ASGI, uvicorn workers)"
	@echo "make test    set up everything and run the full test suite (then Django's own suite on our engine)"
	@echo "make matrix  both suites on every supported Python and Django (noxfile.py; NOX_ARGS=\"-s ...\": some cells)"
	@echo "make stop    stop PostgreSQL, Redis and PgBouncer started by this checkout"
	@echo "make status  show the local services"
	@echo "make lint    ruff and mypy --strict"
	@echo "make bench   run the benchmarks (results in bench/RESULTS.md)"

$(DEPS_STAMP): requirements.txt requirements-dev.txt requirements-bench.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 \
		| { grep -v "^WARNING: Location '.*' is ignored" || true; }
	rm -f $(VENV)/.deps-*
	touch $@

venv: $(DEPS_STAMP)

system-deps:
	scripts/system-deps

services: system-deps
	$(SERVICES) start

services-stop stop:
	$(SERVICES) stop

status:
	$(SERVICES) status

# The application, worker class, threads and timeouts come from project/gunicorn_conf.py (README,
# "Serving"); CONNECTION_POOLS_ASGI=true makes it project.asgi on uvicorn workers (docs/asgi.md)
# and makes manage.py check judge the settings for ASGI.
run: export CONNECTION_POOLS_PROCESSES = $(WORKERS)
run: export CONNECTION_POOLS_ASGI = $(if $(filter 1 true yes,$(ASGI)),true,false)
run: venv services
	$(WITH_ENV) $(BIN)/python manage.py migrate --noinput
	$(WITH_ENV) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(WITH_ENV) $(BIN)/python manage.py localadmin
	@echo ""
	@echo "  Site:        http://127.0.0.1:8000/items/"
	@echo "  Admin:       http://127.0.0.1:8000/admin/"
	@echo "  Dashboard:   http://127.0.0.1:8000/admin/connection-pools/"
	@echo "  API:         http://127.0.0.1:8000/api/v1/admin/connection-pools/stats"
	@echo "  API docs:    http://127.0.0.1:8000/api/v1/admin/connection-pools/docs/"
	@echo "  Metrics:     http://127.0.0.1:8000/metrics"
	@echo "  Serving:     $$([ "$$CONNECTION_POOLS_ASGI" = true ] && echo 'ASGI (project.asgi, uvicorn workers)' || echo 'WSGI (project.wsgi)')"
	@echo "  Stop with Ctrl-C, then 'make stop' to stop PostgreSQL, Redis and PgBouncer."
	@echo ""
	$(WITH_ENV) exec $(BIN)/gunicorn --bind 127.0.0.1:8000 --workers $(WORKERS) \
		--access-logfile - --config python:project.gunicorn_conf

test: venv services
	$(BIN)/python -m playwright --version >/dev/null
	$(WITH_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ "$(DJANGO_SUITE)" != "0" ]; then $(MAKE) --no-print-directory django-suite; fi

# Django's own test suite on our engine, once with psycopg's pool option names, once with the guide's.
django-suite: venv services
	$(WITH_ENV) $(BIN)/python scripts/django_suite.py

# The version matrix (noxfile.py): one virtualenv per (Python, Django), our suite and Django's own
# engine suite in each, on the servers make test uses; then the table of results (README).
matrix: venv services
	$(WITH_ENV) $(BIN)/nox $(NOX_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: venv services
	$(WITH_ENV) $(BIN)/python bench/run_all.py

clean: stop
	rm -rf $(VENV) .nox staticfiles test-artifacts
