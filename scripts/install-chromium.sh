#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian packages chromium, chromium-driver) when
# either is missing. Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver
# exist. Used by `make setup` (for `make test`; the demo needs no browser) and by the browser
# tests in tests/ui/, which drive the built-in dashboard through selenium. The apt-get part,
# with its progress and lock wait, is scripts/apt-install.sh.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get);
# anything else: apt-get failed, or another package manager kept the lock (apt-install.sh).
set -euo pipefail

# Overridable only so the script's own tests can point it at a scratch directory.
CHROMIUM="${PROFILIS_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${PROFILIS_CHROMEDRIVER:-/usr/bin/chromedriver}"

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    exit 0
fi

echo "setup: headless Chromium and chromedriver for tests/ui (Debian packages; up to 240 of" \
    "them, 232 MB, on a bare machine: ~½ min)…" >&2
# Not root or no apt-get: apt-install.sh exits 2 and says what to install by hand. Its
# --no-install-recommends keeps this to the browser and driver (no fonts/desktop extras).
"$BASH" "$(dirname "$0")/apt-install.sh" chromium chromium-driver
ls -l "$CHROMIUM" "$CHROMEDRIVER"
