#!/usr/bin/env bash
# Installs unixODBC and the SQLite ODBC driver (Debian packages) when the driver is missing.
# Idempotent: does nothing when odbcinst already lists the "SQLite3" driver. Used by `make setup`
# (for `make test`): tests/library/test_pyodbc.py and the Sanic app in tests/adapters run real
# pyodbc queries through it. The apt-get part, with its progress and lock wait, is
# scripts/apt-install.sh.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get);
# anything else: apt-get failed, or another package manager kept the lock (apt-install.sh).
set -euo pipefail

has_driver() {
    command -v odbcinst >/dev/null && odbcinst -q -d 2>/dev/null | grep -qx '\[SQLite3\]'
}

if has_driver; then
    exit 0
fi

echo "setup: unixODBC and the SQLite ODBC driver for the pyodbc and Sanic tests" \
    "(Debian packages; a few seconds)…" >&2
"$BASH" "$(dirname "$0")/apt-install.sh" unixodbc libsqliteodbc
has_driver || { echo "setup: the SQLite3 ODBC driver is still not registered" >&2; exit 1; }
