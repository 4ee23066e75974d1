#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian packages chromium, chromium-driver) when
# either is missing. Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver
# exist. Used by `make setup` and by the browser tests in tests/ui/, which drive the built-in
# dashboard through selenium.
# Exit status: 0 installed (or already there); 2 cannot install here (not root, no apt-get);
# anything else: apt-get failed.
set -euo pipefail

# Overridable only so the script's own tests can point it at a scratch directory.
CHROMIUM="${PROFILIS_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${PROFILIS_CHROMEDRIVER:-/usr/bin/chromedriver}"

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: $CHROMIUM or $CHROMEDRIVER missing and not root;" >&2
    echo "  run as root: apt-get install --no-install-recommends chromium chromium-driver" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null; then
    echo "install-chromium: apt-get not found; install Chromium and its WebDriver (Debian:" >&2
    echo "  chromium, chromium-driver) so that $CHROMIUM and $CHROMEDRIVER exist" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps it to the browser and driver (no fonts/desktop extras).
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
ls -l "$CHROMIUM" "$CHROMEDRIVER"
