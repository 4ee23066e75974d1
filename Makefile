# Profilis developer commands. `make test` is what CI runs (after `make lint`).
# Every target that needs Python depends on `setup`, which builds .venv once per pyproject change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := dev

.PHONY: setup test lint format bench demo clean

setup: $(STAMP)

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

demo:
	@echo "make demo is coming: it will run the whole pipeline locally (see the README)."

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache bench/results
