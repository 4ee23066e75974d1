#!/usr/bin/env bash
# Installs Debian packages for `make setup`: the one apt-get path of install-prometheus.sh and
# install-chromium.sh. Prints a line per step with the seconds it took and, when another package
# manager holds apt's or dpkg's lock, says which process and waits for it, bounded.
#
#   scripts/apt-install.sh PACKAGE...        (always --no-install-recommends)
#
# PROFILIS_APT_LOCK_TIMEOUT: seconds to wait for a held lock, 300 by default.
# Exit status: 0 installed; 2 cannot install here (not root, no apt-get); 3 a lock was still
# held after the wait; anything else: apt-get failed.
set -euo pipefail

TIMEOUT_S="${PROFILIS_APT_LOCK_TIMEOUT:-300}"
# The locks that `apt-get update` and `apt-get install` take. Overridable only so the script's
# own tests can hold a scratch lock instead of the machine's.
read -r -a LOCKS <<<"${PROFILIS_APT_LOCKS:-/var/lib/apt/lists/lock /var/lib/dpkg/lock-frontend}"
DEADLINE=$((SECONDS + TIMEOUT_S))

say() { echo "setup: $*" >&2; }

if [ $# -eq 0 ]; then
    echo "usage: $0 PACKAGE..." >&2
    exit 64
fi
if [ "$(id -u)" -ne 0 ]; then
    say "cannot install $* here: not root;"
    echo "  run as root: apt-get install --no-install-recommends $*" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null; then
    say "cannot install $* here: apt-get not found; install this system's equivalent of" \
        "those Debian packages"
    exit 2
fi

holder() {  # holder LOCK: the pid holding LOCK, or nothing
    # apt and dpkg take fcntl (POSIX) locks, which flock(1) does not see; /proc/locks lists
    # them with the file as MAJOR:MINOR:INODE (hex device numbers). "->" lines are waiters.
    local dev inode
    read -r dev inode < <(stat -c '%D %i' "$1" 2>/dev/null) || return 0
    dev=$((16#$dev))
    awk -v id="$(printf '%02x:%02x:%s' $(((dev >> 8) & 0xfff)) \
        $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) "$inode")" \
        '$2 != "->" && $6 == id { print $5; exit }' /proc/locks 2>/dev/null || true
}

wait_for_locks() {  # returns when no lock is held; exit 3 once the deadline has passed
    local lock pid waited_since="" said=""
    while :; do
        pid=""
        for lock in "${LOCKS[@]}"; do
            pid="$(holder "$lock")"
            [ -n "$pid" ] && break
        done
        [ -z "$pid" ] && break
        local who="pid $pid, $(cat "/proc/$pid/comm" 2>/dev/null || echo gone)"
        if [ "$said" != "$lock $pid" ]; then
            say "waiting up to $((DEADLINE - SECONDS)) s for another package manager ($who)" \
                "to release $lock…"
            said="$lock $pid"
            waited_since="${waited_since:-$SECONDS}"
        fi
        if [ "$SECONDS" -ge "$DEADLINE" ]; then
            say "gave up after $TIMEOUT_S s: $lock is still held ($who)."
            echo "  Let that package manager finish (or stop it), then run the command again;" \
                "PROFILIS_APT_LOCK_TIMEOUT=SECONDS waits longer." >&2
            exit 3
        fi
        sleep 0.5
    done
    if [ -n "$said" ]; then say "lock released after $((SECONDS - waited_since)) s"; fi
}

export DEBIAN_FRONTEND=noninteractive
# apt-get waits for the dpkg lock itself with this option (apt >= 1.9.11), which covers a
# package manager that starts between our check and its own; `apt-get update` ignores it for
# the package lists' lock, hence wait_for_locks first.
lock_timeout() { echo "DPkg::Lock::Timeout=$((DEADLINE > SECONDS ? DEADLINE - SECONDS : 0))"; }

wait_for_locks
started=$SECONDS
say "apt-get update (package lists)…"
apt-get update -qq -o "$(lock_timeout)"
say "package lists updated in $((SECONDS - started)) s"

# --print-uris lists what the install would download: 'URI' FILE SIZE [HASH] per package.
read -r count bytes < <(apt-get install -qq --print-uris --no-install-recommends "$@" |
    awk 'NF >= 3 && $3 ~ /^[0-9]+$/ { n++; b += $3 } END { print n + 0, b + 0 }')
wait_for_locks
started=$SECONDS
say "apt-get install $*: downloading $((bytes / 1000000)) MB ($count packages), then unpacking…"
# dpkg's line per package unpacked would flood the log; errors still reach stderr.
apt-get install -y -qq --no-install-recommends -o "$(lock_timeout)" "$@" >/dev/null
say "installed $* in $((SECONDS - started)) s"
