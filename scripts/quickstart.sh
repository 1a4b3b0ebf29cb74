#!/usr/bin/env bash
# Quick start: install everything from the project's own files, then run the main job, `inv drill.crash`,
# on the embedded defaults (native Restate, local model). Extra arguments go to the drill.
#
# restate-server calls GitHub at every start; unless DRILL_NETWORK=host, the drill runs inside a
# loopback-only network namespace so nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "${DRILL_NETWORK:-isolated}" = "host" ]; then
  exec .venv/bin/inv drill.crash "$@"
fi
exec scripts/loopback-only .venv/bin/inv drill.crash "$@"
