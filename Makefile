# Nudgepath: `make demo` runs the embedded demo, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
PORT ?= 8000
DATA ?=

# The suite runs against PostgreSQL and Redis on this machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/nudgepath
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# The suite runs in this many processes (pytest-xdist), one per core. Each
# process gets its own test database and Redis database: 15, then 14, ...
PYTEST_WORKERS ?= 2

.PHONY: install demo test lint bench clean

$(BIN)/.installed: pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	# --inexact keeps uv itself, which the lock file does not list.
	$(BIN)/uv sync --frozen --inexact --python $(BIN)/python
	touch $@

install: $(BIN)/.installed

# Links in the demo's emails point at the port it serves on.
demo: export NUDGEPATH_SITE_URL ?= http://127.0.0.1:$(PORT)
demo: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py setup_demo $(if $(DATA),--data "$(DATA)")
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

test: install
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy .

# The benchmarks build and drop their own database, test_nudgepath_bench.
# BENCH names a subset, for example make bench BENCH=sweep.
BENCH ?=
bench: install
	# The portal benchmark loads the server with wrk, an HTTP load generator.
	command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
	DATABASE_URL=$(TEST_DATABASE_URL)_bench CELERY_BROKER_URL=$(TEST_BROKER_URL) \
		$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) var db.sqlite3
