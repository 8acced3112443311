#!/usr/bin/env bash
# The whole hexflow test suite, from a fresh clone: creates .venv, installs hexflow with its
# dev extras, starts the services the tests use (PostgreSQL and Slurm, when run as root; CI
# is root), runs ruff, mypy, import-linter and pytest, and stops the services again.
#   bash scripts/test.sh                 everything (what CI runs)
#   bash scripts/test.sh -m "not slow"   skip the slow end-to-end tests locally
# Extra arguments go to pytest. HEXFLOW_TEST_SERVICES=0 skips starting services.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[dev,postgres,dask,redis]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import hexflow, sqlalchemy, psycopg, distributed, redis' # fail early if the install did not work

cleanup() {
  if [ -n "${PG_STARTED:-}" ]; then bash scripts/ci/postgres-down.sh || true; fi
  if [ -n "${REDIS_STARTED:-}" ]; then REDIS_DIR=/tmp/hexflow-redis bash scripts/ci/redis-down.sh >/dev/null || true; fi
  if [ -n "${S3_STARTED:-}" ]; then S3_DIR=/tmp/hexflow-s3 bash scripts/ci/s3-down.sh >/dev/null || true; fi
  if [ -n "${SLURM_STARTED:-}" ]; then SLURM_USER_PID=$$ bash scripts/ci/slurm-down.sh || true; fi
  if [ -n "${CONTAINERS_UP:-}" ]; then bash scripts/ci/container-down.sh || true; fi
}
trap cleanup EXIT

if [ "${HEXFLOW_TEST_SERVICES:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  PG_DIR=/tmp/hexflow-pg PG_PORT=${PG_PORT:-55432} bash scripts/ci/postgres-up.sh && PG_STARTED=1
  # shellcheck disable=SC1091
  . /tmp/hexflow-pg/env
  export HEXFLOW_TEST_POSTGRES_URL="postgresql+psycopg://${PGUSER}:${PGPASSWORD}@${PGHOST}:${PGPORT}/${PGDATABASE}"
  # Redis 7 for the event bus's Redis Streams backend; its tests then must run
  REDIS_DIR=/tmp/hexflow-redis REDIS_PORT=${REDIS_PORT:-56379} bash scripts/ci/redis-up.sh \
    || { echo "test.sh: Redis did not start" >&2; exit 1; }
  REDIS_STARTED=1
  # shellcheck disable=SC1091
  . /tmp/hexflow-redis/env
  export HEXFLOW_TEST_REDIS_URL="$REDIS_URL"
  # single-node Slurm (fake GPUs, partitions regular/gpu/realtime); its tests then must run
  # (shared by test runs on one machine: stopped when the last one that uses it ends)
  SLURM_RUN_DIR=/tmp/hexflow-slurm SLURM_USER_PID=$$ bash scripts/ci/slurm-up.sh \
    || { echo "test.sh: Slurm did not start" >&2; exit 1; }
  SLURM_STARTED=1
  export HEXFLOW_TEST_SLURM=1
else
  echo "test.sh: not starting PostgreSQL, Redis and Slurm (needs root and apt); their tests will be skipped"
fi

# S3-compatible server (moto, from the dev extras) on loopback for the S3 tier's tests
if [ "${HEXFLOW_TEST_SERVICES:-1}" = 1 ]; then
  S3_DIR=/tmp/hexflow-s3 S3_PORT=${S3_PORT:-59010} VENV=.venv bash scripts/ci/s3-up.sh \
    || { echo "test.sh: the S3 server did not start" >&2; exit 1; }
  S3_STARTED=1
  # shellcheck disable=SC1091
  set -a; . /tmp/hexflow-s3/env; set +a
  export HEXFLOW_TEST_S3_URL="$S3_ENDPOINT_URL"
fi

# podman (runc) and two test images built without a registry, cached under
# /var/tmp/hexflow-containers (first time ~2 min, then <1 s); the container tests then must run
if [ "${HEXFLOW_TEST_SERVICES:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  CONTAINER_EXPORTS=$(bash scripts/ci/container-up.sh) \
    || { echo "test.sh: podman and its test images could not be set up" >&2; exit 1; }
  eval "$CONTAINER_EXPORTS"
  CONTAINERS_UP=1
  export HEXFLOW_TEST_PODMAN=1
else
  echo "test.sh: not setting up podman (needs root and apt); the container tests will be skipped"
fi

echo "== ruff";          .venv/bin/ruff check src tests examples benchmarks
echo "== ruff format";   .venv/bin/ruff format --check src tests examples benchmarks
echo "== mypy";          .venv/bin/mypy src
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest";        .venv/bin/pytest "$@"
