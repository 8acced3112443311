#!/usr/bin/env bash
# s3-up.sh (from the team recipes) - S3-compatible object store on loopback for the
# tests of the S3 tier, nothing downloaded at run time. scripts/test.sh runs it with
# VENV=.venv S3_DIR=/tmp/hexflow-s3 S3_PORT=59010 and exports HEXFLOW_TEST_S3_URL.
#   S3_IMPL=moto   (default) moto's server mode from PyPI: in-memory, all of
#                  S3 that boto3 uses (buckets, objects, multipart, presign,
#                  versioning...). pip install 'moto[server]' boto3
#   S3_IMPL=s3rver npm 's3rver' (Node): objects on disk in $S3_DIR/data
#   VENV=.venv  S3_DIR=/tmp/hexflow-s3  S3_PORT=59010
# Credentials: any (moto/s3rver accept anything; s3rver defaults to
# S3RVER/S3RVER). Writes $S3_DIR/env with S3_ENDPOINT_URL etc.
set -euo pipefail
T0=$(date +%s%N)
el() { local d=$(( ($(date +%s%N) - ${1:-$T0}) / 10000000 )); printf '%d.%02d' $((d / 100)) $((d % 100)); }   # seconds since $1
log() { echo "[s3-up +$(el)s] $*"; }
IMPL=${S3_IMPL:-moto}
VENV=${VENV:-.venv}
DIR=${S3_DIR:-/tmp/hexflow-s3}
PORT=${S3_PORT:-59010}

[ -s "$DIR/s3.pid" ] && bash "$(dirname "$0")/s3-down.sh" >/dev/null 2>&1 || true
mkdir -p "$DIR"
case "$IMPL" in
  moto)
    [ -x "$VENV/bin/moto_server" ] || { log "pip install moto[server]"; "$VENV/bin/pip" install -q 'moto[server]' boto3; }
    T_S=$(date +%s%N)
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >"$DIR/s3.log" 2>&1 &
    echo $! > "$DIR/s3.pid"
    KEY=test; SECRET=test ;;
  s3rver)
    if [ ! -x "$DIR/node_modules/.bin/s3rver" ]; then
      log "npm install s3rver"
      (cd "$DIR" && npm install --silent --no-audit --no-fund s3rver@3 >/dev/null 2>&1)
    fi
    T_S=$(date +%s%N)
    mkdir -p "$DIR/data"
    setsid node "$DIR/node_modules/s3rver/bin/s3rver.js" -a 127.0.0.1 -p "$PORT" \
        -d "$DIR/data" --silent </dev/null >"$DIR/s3.log" 2>&1 &
    echo $! > "$DIR/s3.pid"
    KEY=S3RVER; SECRET=S3RVER ;;
  *) echo "S3_IMPL must be moto|s3rver" >&2; exit 2 ;;
esac
for _ in $(seq 1 200); do
  python3 -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:$PORT/',timeout=1)" >/dev/null 2>&1 && break
  # an S3 error reply (403) also means it is up
  python3 -c "
import urllib.request,urllib.error,sys
try: urllib.request.urlopen('http://127.0.0.1:$PORT/',timeout=1)
except urllib.error.HTTPError: sys.exit(0)
except Exception: sys.exit(1)" && break
  sleep 0.1
done
kill -0 "$(cat "$DIR/s3.pid")" 2>/dev/null || { cat "$DIR/s3.log" >&2; exit 1; }
cat > "$DIR/env" <<EOF
S3_ENDPOINT_URL=http://127.0.0.1:$PORT
AWS_ACCESS_KEY_ID=$KEY
AWS_SECRET_ACCESS_KEY=$SECRET
AWS_DEFAULT_REGION=us-east-1
EOF
log "$IMPL ready on http://127.0.0.1:$PORT in $(el "$T_S")s (pid $(cat "$DIR/s3.pid")); env in $DIR/env"
