# Profilis developer commands. `make test` is what CI runs (after `make lint`).
# Every target that needs Python depends on `setup`, which builds .venv once per pyproject change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := dev

.PHONY: setup system-tools test lint format bench demo clean

setup: $(STAMP) system-tools

# Real Prometheus/Alertmanager and a headless Chromium for the tests (Debian packages).
# Exit 2 means "cannot install here" (not root, no apt): the tests that need them skip
# with the script's message; in CI (root on Debian) they are installed and must run.
system-tools:
	@bash scripts/install-prometheus.sh || test $$? -eq 2
	@bash scripts/install-chromium.sh || test $$? -eq 2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[$(EXTRAS)]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m bench

# `make demo [DURATION=seconds] [BACKPRESSURE=1]`: the whole pipeline on this machine (demo/).
DURATION     ?= 0
BACKPRESSURE ?= 0

demo: setup
	$(BIN)/python -m demo --duration "$(DURATION)" --backpressure "$(BACKPRESSURE)"

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache bench/results
