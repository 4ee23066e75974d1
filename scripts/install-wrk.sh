#!/usr/bin/env bash
# Installs wrk (Debian package), the HTTP load generator of `make bench-app` (bench/app), when
# it is missing. Idempotent: does nothing when wrk is on PATH. The apt-get part, with its
# progress and lock wait, is scripts/apt-install.sh.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get):
# bench/app then falls back to its own Python load loop and says so;
# anything else: apt-get failed, or another package manager kept the lock (apt-install.sh).
set -euo pipefail

if command -v wrk >/dev/null; then
    exit 0
fi

echo "setup: wrk, the HTTP load generator of make bench-app (Debian package; a few seconds)…" >&2
"$BASH" "$(dirname "$0")/apt-install.sh" wrk
command -v wrk >/dev/null || { echo "setup: wrk is still not on PATH" >&2; exit 1; }
