VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test unit lint bench screenshots clean chaos chaos-ci

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -f demo.db demo.db-wal demo.db-shm
	$(VENV)/bin/queuekit --database-url sqlite:///demo.db demo

lint: $(STAMP)
	$(VENV)/bin/ruff check queuekit tests alembic benchmarks
	$(VENV)/bin/ruff format --check queuekit tests alembic benchmarks
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -x -p no:cacheprovider $(PYTEST_ARGS)
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) chaos-ci; \
	else echo "chaos-ci skipped: the chaos suite needs root (network namespaces)"; fi

# Many-machines chaos suite (root only): 4 hosts in network namespaces against a
# private PostgreSQL, direct and through PgBouncer. See docs/scaling.md.
chaos: $(STAMP)
	$(PY) -m tests.chaos $(CHAOS_ARGS)

chaos-ci: $(STAMP)
	$(PY) -m tests.chaos --ci --procs 2 $(CHAOS_ARGS)

# The database-free tier: seconds, no server needed.
unit: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)
screenshots: $(STAMP)
	$(PY) -m tests.screenshots docs/images

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info
