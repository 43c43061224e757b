# The Makefile bootstraps .venv from pyproject.toml itself: nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mailhooks serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check src tests bench chaos
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every scenario of bench/run.py (receiver, servers, workers, databases started and removed by it): one table.
bench: $(STAMP)
	cd bench && ../$(BIN)/python run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) mailhooks.db

# Fault scenarios against real processes (receiver, databases, Redis, resolver staged by it): one table.
chaos: $(STAMP)
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)
