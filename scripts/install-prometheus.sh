#!/usr/bin/env bash
# Installs Prometheus, promtool and Alertmanager (Debian packages) when any is missing.
# Idempotent: does nothing when all three are on PATH. Used by `make setup` and by the tests
# in tests/grafana/, which run promtool and real servers on loopback.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get);
# anything else: apt-get failed.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null \
    && command -v prometheus-alertmanager >/dev/null; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-prometheus: promtool/prometheus/prometheus-alertmanager missing and not root;" >&2
    echo "  run as root: apt-get install --no-install-recommends prometheus prometheus-alertmanager" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null; then
    echo "install-prometheus: apt-get not found; install Prometheus 2.x and Alertmanager so that" >&2
    echo "  promtool, prometheus and prometheus-alertmanager are on PATH" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: otherwise it drags in node-exporter, smartmontools and more.
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
command -v promtool prometheus prometheus-alertmanager
