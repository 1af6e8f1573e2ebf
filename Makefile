# The two commands a user needs (README): `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck check services bench bench-data bench-engine bench-reads \
	bench-sweeps bench-http bench-delivery graph clean

$(VENV)/.installed: pyproject.toml requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==0.13.9
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed

## Run web + worker + beat on the embedded default (SQLite + filesystem broker under var/).
run: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} ./scripts/run.sh

## The whole test suite against PostgreSQL and Redis on localhost (started if stopped), in two
## pytest-xdist workers (each with its own test database): half the time on two cores.
PYTEST_ARGS ?= -n 2
test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

services:
	./scripts/ensure_services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/lint-imports

typecheck: install
	DJANGO_DEBUG=1 $(VENV)/bin/mypy .

check: lint typecheck

## Benchmarks (bench/README.md): each builds and drops its own database on the local server.
## BENCH_ARGS=--quick for the CI size; `make bench` runs them all at that size.
bench: install services
	for name in generate engine reads sweeps; do $(PY) -m bench.$$name --quick || exit 1; done
	$(PY) bench/http/run.py --quick
	$(PY) bench/delivery/run.py --quick

bench-data: install services
	$(PY) -m bench.generate $(BENCH_ARGS)

bench-engine: install services
	$(PY) -m bench.engine $(BENCH_ARGS)

bench-reads: install services
	$(PY) -m bench.reads $(BENCH_ARGS)

bench-sweeps: install services
	$(PY) -m bench.sweeps $(BENCH_ARGS)

bench-http: install services
	$(PY) bench/http/run.py $(BENCH_ARGS)

bench-delivery: install services
	$(PY) bench/delivery/run.py $(BENCH_ARGS)

graph: install
	DJANGO_DEBUG=1 $(PY) manage.py lifecycle_graph

clean:
	rm -rf var staticfiles .pytest_cache .mypy_cache .ruff_cache
