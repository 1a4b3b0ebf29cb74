#!/usr/bin/env bash
# The test command (README, and .ci/run calls exactly this): bash scripts/test.sh [pytest args]
#
# Installs what the tests need (scripts/bootstrap.sh), lints and type-checks, then runs every test
# inside a loopback-only network namespace: the integration tests start a real restate-server, the
# writer and the local model, and nothing may leave this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The Docker-backend tests need dockerd (they start a private one in the test namespace). Installing it
# needs the Debian mirror, so it happens here, outside the namespace; if it cannot, those tests skip
# and say why.
if ! command -v dockerd >/dev/null 2>&1; then
  .venv/bin/inv engine.install || echo "scripts/test.sh: no dockerd; the Docker tests will be skipped" >&2
fi
# The report pictures are checked in headless Chromium (tests/integration/test_report_pictures.py).
. scripts/optional-package.sh
optional_package scripts/test.sh chromium chromium "the report screenshot tests"
echo "== lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The import contracts in pyproject.toml ([tool.importlinter]): layers, no circles, the writer's one door.
.venv/bin/lint-imports --no-cache
# The workflow's own security audit (pinned actions, no persisted credentials, least permissions);
# offline: no GitHub API, so it runs the same here and in CI.
.venv/bin/zizmor --offline .github/workflows/
echo "== tests (loopback-only network namespace)"
set +e
scripts/loopback-only --contained .venv/bin/python -m pytest -v --durations=15 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
