# The two commands of the README: `make run` (offline demo) and `make test` (lint, types, tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# How long `make run` lets the demo run, in wall seconds (0 = until Ctrl-C).
DURATION ?= 180
# Exchange time runs up to this many times faster than the wall: 1200 replays 60 hours of real
# Binance candles in 3 minutes (the engine and the simulator share one paced virtual clock).
SPEED ?= 1200
# The demo replays the packaged real candles in order from 2025-05-05 08:00 UTC.
DEMO_START_MS ?= 1746432000000
PYTEST_ARGS ?=

.PHONY: run test lint types unit bench bench-peers soak clean

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
	AEGIS_SIM__START_MS=$(DEMO_START_MS) AEGIS_SIM__REPLAY_ALIGNED=true \
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

# aegis backtest against freqtrade and nautilus_trader on the same candles and rules (issue 16). The
# peers live in their own venv, from PyPI, never in aegis' (nor in `make test`). Both pins install
# on Python 3.11 (nautilus_trader 1.221.0 still ships cp311 wheels).
# PEERS_ARGS="--runs 5 --days 29" for a month on more processes.
PEERS_VENV ?= .venv-peers
FREQTRADE_VERSION ?= 2026.9
NAUTILUS_VERSION ?= 1.221.0
PEERS_ARGS ?=
$(PEERS_VENV)/.installed-$(FREQTRADE_VERSION)-$(NAUTILUS_VERSION):
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q "freqtrade==$(FREQTRADE_VERSION)" "nautilus_trader==$(NAUTILUS_VERSION)"
	touch $@

bench-peers: $(VENV)/.installed-dev $(PEERS_VENV)/.installed-$(FREQTRADE_VERSION)-$(NAUTILUS_VERSION)
	$(BIN)/python -m bench.bench_peers --peers-python $(PEERS_VENV)/bin/python $(PEERS_ARGS)

# The chaos soak (issue 17): 24 simulated hours of faults, SIGKILLs and restarts, then the ledger
# (SOAK_ARGS="--seed 7 --hours 48" for another run; --short is the test suite's variant).
SOAK_ARGS ?=
soak: $(VENV)/.installed-dev
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
