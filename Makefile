# The README's commands. Everything runs inside .venv, built by scripts/setup.sh.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-fast lint demo bench clean

setup:
	VENV=$(VENV) bash scripts/setup.sh

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: setup
	$(VENV)/bin/garden demo

bench: setup
	$(PY) -m bench.train_throughput

clean:
	rm -rf $(VENV) .pytest_cache
