#!/usr/bin/env bash
# The whole hexflow test suite, from a fresh clone: creates .venv, installs hexflow with its
# dev extras, starts the services the tests use (PostgreSQL, when run as root; CI is root),
# runs ruff, mypy, import-linter and pytest, and stops the services again.
#   bash scripts/test.sh                 everything (what CI runs)
#   bash scripts/test.sh -m "not slow"   skip the slow end-to-end tests locally
# Extra arguments go to pytest. HEXFLOW_TEST_SERVICES=0 skips starting services.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev,postgres]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import hexflow, sqlalchemy, psycopg' # fail early if the install did not work

cleanup() {
  if [ -n "${PG_STARTED:-}" ]; then bash scripts/ci/postgres-down.sh || true; fi
}
trap cleanup EXIT

if [ "${HEXFLOW_TEST_SERVICES:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  PG_DIR=/tmp/hexflow-pg PG_PORT=${PG_PORT:-55432} bash scripts/ci/postgres-up.sh && PG_STARTED=1
  # shellcheck disable=SC1091
  . /tmp/hexflow-pg/env
  export HEXFLOW_TEST_POSTGRES_URL="postgresql+psycopg://${PGUSER}:${PGPASSWORD}@${PGHOST}:${PGPORT}/${PGDATABASE}"
else
  echo "test.sh: not starting PostgreSQL (needs root and apt); its tests will be skipped"
fi

echo "== ruff";          .venv/bin/ruff check src tests examples benchmarks
echo "== ruff format";   .venv/bin/ruff format --check src tests examples benchmarks
echo "== mypy";          .venv/bin/mypy src
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest";        .venv/bin/pytest "$@"
