#!/usr/bin/env bash
# Installs Prometheus, promtool and Alertmanager (Debian packages) when any is missing.
# Idempotent: does nothing when all three are on PATH. Used by `make setup` (for `make demo`
# and `make test`), by the demo and by tests/grafana/, which run promtool and real servers on
# loopback. The apt-get part, with its progress and lock wait, is scripts/apt-install.sh.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get);
# anything else: apt-get failed, or another package manager kept the lock (apt-install.sh).
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null \
    && command -v prometheus-alertmanager >/dev/null; then
    exit 0
fi

echo "setup: Prometheus, promtool and Alertmanager for the demo and tests/grafana" \
    "(Debian packages; ~15 s on a fresh machine)…" >&2
# Not root or no apt-get: apt-install.sh exits 2 and says what to install by hand.
# It passes --no-install-recommends: otherwise this drags in node-exporter, smartmontools and more.
"$BASH" "$(dirname "$0")/apt-install.sh" prometheus prometheus-alertmanager
command -v promtool prometheus prometheus-alertmanager
