# The two commands of the README: `make run` (offline demo) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# How long `make run` lets the demo run, in seconds (0 = until Ctrl-C).
DURATION ?= 30
# Exchange-clock speed of the demo: 60 closes a 1-minute candle every wall second.
SPEED ?= 60
PYTEST_ARGS ?=

.PHONY: run test lint types unit bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/aegis run --sim --sim-speed $(SPEED) --ops-port 0 --duration $(DURATION)

test: lint types unit

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check aegis tests bench

types: $(VENV)/.installed-dev
	$(BIN)/mypy --strict aegis

unit: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
