#!/usr/bin/env bash
# postgres-up.sh (from the team recipes) - throw-away PostgreSQL 15 cluster in a temp dir on
# 127.0.0.1:$PG_PORT (Debian 12 package, run as root; the server itself runs
# as the 'postgres' user because postgres refuses to run as root).
#   PG_DIR=/tmp/hexflow-pg  PG_PORT=55432  PG_DB=ci  PG_PASSWORD=postgres
# Writes $PG_DIR/env with DATABASE_URL=postgresql://postgres:...@127.0.0.1:PORT/DB
set -euo pipefail
T0=$(date +%s%N)
el() { local d=$(( ($(date +%s%N) - ${1:-$T0}) / 10000000 )); printf '%d.%02d' $((d / 100)) $((d % 100)); }   # seconds since $1
log() { echo "[postgres-up +$(el)s] $*"; }

DIR=${PG_DIR:-/tmp/hexflow-pg}
PORT=${PG_PORT:-55432}
DB=${PG_DB:-ci}
PW=${PG_PASSWORD:-postgres}
PGBIN=/usr/lib/postgresql/15/bin
export DEBIAN_FRONTEND=noninteractive

if [ ! -x "$PGBIN/pg_ctl" ]; then
  log "installing postgresql-15"
  # stop the package from creating (and trying to start) the default
  # 15/main cluster on port 5432; we only want the binaries
  mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] || \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
  log "installed"
fi
T_I=$(date +%s%N)

# stop a previous instance of ours
if [ -s "$DIR/data/postmaster.pid" ]; then
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
fi
rm -rf "$DIR"; mkdir -p "$DIR"; chown postgres:postgres "$DIR"; chmod 700 "$DIR"
echo "$PW" > "$DIR/pwfile"; chown postgres "$DIR/pwfile"

# --no-sync + fsync=off: this is a throw-away test database; PG_DURABLE=1 keeps PostgreSQL's
# defaults (fsync, synchronous_commit, full_page_writes on): for benchmarks with durability
DURABILITY="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [ "${PG_DURABLE:-0}" = 1 ]; then DURABILITY="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"; fi
runuser -u postgres -- "$PGBIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --pwfile="$DIR/pwfile" --no-sync \
    >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
rm -f "$DIR/pwfile"
log "initdb done ($(el "$T_I")s)"
T_S=$(date +%s%N)
# -k: unix socket in our dir (default /var/run/postgresql may not exist)
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 $DURABILITY -c max_connections=200" \
    start >/dev/null || { tail -20 "$DIR/postgres.log" >&2; exit 1; }
log "server ready in $(el "$T_S")s (pid $(head -1 "$DIR/data/postmaster.pid"))"
runuser -u postgres -- psql -h "$DIR" -p "$PORT" -U postgres -qAt -c "CREATE DATABASE $DB" >/dev/null
cat > "$DIR/env" <<EOF
PGHOST=127.0.0.1
PGPORT=$PORT
PGUSER=postgres
PGPASSWORD=$PW
PGDATABASE=$DB
DATABASE_URL=postgresql://postgres:$PW@127.0.0.1:$PORT/$DB
EOF
log "database '$DB' created; $(runuser -u postgres -- psql -h "$DIR" -p "$PORT" -qAt -c 'show server_version'); env in $DIR/env; total $(el)s"
