#!/usr/bin/env bash
# postgres-down.sh - stop the postgres-up.sh cluster (its postmaster PID is
# in $PG_DIR/data/postmaster.pid) and delete the dir (PG_PURGE=0 keeps it).
set -uo pipefail
DIR=${PG_DIR:-/tmp/hexflow-pg}
PGBIN=/usr/lib/postgresql/15/bin
if [ -s "$DIR/data/postmaster.pid" ]; then
  pid=$(head -1 "$DIR/data/postmaster.pid")
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || { kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null; }
  echo "stopped postgres ($pid)"
fi
[ "${PG_PURGE:-1}" = 1 ] && rm -rf "$DIR"
exit 0
