#!/usr/bin/env bash
# Installs valgrind (Debian package), whose callgrind counts the instructions per operation of
# `make bench`'s hot-path rows (bench/instructions.py), when it is missing. Idempotent: does
# nothing when valgrind is on PATH. The apt-get part, with its progress and lock wait, is
# scripts/apt-install.sh.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get):
# `make bench` then prints one line saying the instruction rows are skipped, and why;
# anything else: apt-get failed, or another package manager kept the lock (apt-install.sh).
set -euo pipefail

if command -v valgrind >/dev/null; then
    exit 0
fi

echo "setup: valgrind, whose callgrind counts make bench's instructions per operation" \
    "(Debian package; a few seconds)…" >&2
"$BASH" "$(dirname "$0")/apt-install.sh" valgrind
command -v valgrind >/dev/null || { echo "setup: valgrind is still not on PATH" >&2; exit 1; }
