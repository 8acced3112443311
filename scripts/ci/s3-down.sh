#!/usr/bin/env bash
# s3-down.sh (from the team recipes) - stop s3-up.sh's server by PID; S3_PURGE=1 (default) deletes
# $S3_DIR except node_modules (so a later s3rver start needs no npm install).
set -uo pipefail
DIR=${S3_DIR:-/tmp/hexflow-s3}
if [ -s "$DIR/s3.pid" ]; then
  pid=$(cat "$DIR/s3.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped s3 server ($pid)"
  fi
  rm -f "$DIR/s3.pid"
fi
[ "${S3_PURGE:-1}" = 1 ] && find "$DIR" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name 'package*.json' -exec rm -rf {} +
exit 0
