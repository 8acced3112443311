#!/usr/bin/env bash
# slurm-up.sh (from the team recipes, shared/recipes/slurm-up.sh) - install (if missing) and
# start a single-node Slurm 22.05 cluster on loopback (Debian 12, run as root, no systemd
# needed, no stdin), for the Slurm executor's tests (scripts/test.sh starts it as root).
# hexflow's changes to the recipe: run dir /tmp/hexflow-slurm, a fake 8-CPU node by default
# (the contract tests run a few one-CPU jobs at once on a 2-core machine), no slurmrestd.
#
#   node      : NodeName=localhost NodeAddr=127.0.0.1, real CPU count / memory
#               (from `slurmd -C`), optional fake GPUs as GRES (gpu:N)
#   partitions: regular (default), gpu, realtime (PriorityTier=10, preempts
#               the others with PreemptMode=REQUEUE)
#   accounting: SLURM_ACCOUNTING=jobcomp  (default) jobcomp/filetxt -> `sacct -c`
#               SLURM_ACCOUNTING=slurmdbd full sacct + QOS, via slurmdbd and a
#                                         throw-away MariaDB on 127.0.0.1
#               SLURM_ACCOUNTING=none
#
# Environment knobs (all optional):
#   SLURM_RUN_DIR=/tmp/hexflow-slurm state, spool, logs, pids, fake devices, mariadb
#   SLURM_CLUSTER=ci              ClusterName
#   SLURM_GPUS=4                  fake GPUs on the node (0 = no GRES at all)
#   SLURM_CPUS=8                  advertise this many CPUs whatever the machine has
#                                 (SlurmdParameters=config_overrides); empty = real count
#   SLURM_CTLD_PORT=6817 SLURM_D_PORT=6818 SLURM_DBD_PORT=6819 SLURM_DB_PORT=3307
#   SLURM_DEF_MEM_PER_CPU=512     MB; without it every job grabs all node memory
#   SLURM_SMOKE=1                 run one test job at the end
#   SLURM_CGROUP=0                1 = proctrack/cgroup + task/cgroup (cgroup v1
#                                 here): --mem is enforced, jobs over it end
#                                 OUT_OF_MEMORY; 0 = proctrack/linuxproc
#   SLURM_USER_PID=               register this pid as a user of the cluster (see below)
#   SLURM_CONF_DIR=/etc/slurm     where slurm.conf/gres.conf/slurmdbd.conf go
#                                 (/etc/slurm => no SLURM_CONF needed by clients)
set -euo pipefail

T0=$(date +%s%N)
el() { local d=$(( ($(date +%s%N) - ${1:-$T0}) / 10000000 )); printf '%d.%02d' $((d / 100)) $((d % 100)); }   # seconds since $1
log() { echo "[slurm-up +$(el)s] $*"; }

RUN=${SLURM_RUN_DIR:-/tmp/hexflow-slurm}
CLUSTER=${SLURM_CLUSTER:-ci}
GPUS=${SLURM_GPUS:-4}
ACCT=${SLURM_ACCOUNTING:-jobcomp}
CTLD_PORT=${SLURM_CTLD_PORT:-6817}
D_PORT=${SLURM_D_PORT:-6818}
DBD_PORT=${SLURM_DBD_PORT:-6819}
DB_PORT=${SLURM_DB_PORT:-3307}
DEFMEM=${SLURM_DEF_MEM_PER_CPU:-512}
SMOKE=${SLURM_SMOKE:-1}
CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
export SLURM_CONF=$CONF_DIR/slurm.conf
export DEBIAN_FRONTEND=noninteractive

[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

# ---------------------------------------------------------------- install
pkgs=(munge slurmctld slurmd slurm-client)
[ "$ACCT" = slurmdbd ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  # another apt/dpkg run (e.g. a parallel job) may hold the lock -> wait
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # --no-install-recommends: skips ~35 plugin packages (hdf5, rrd, ipmi, ...)
  # policy-rc.d / no systemd: postinst cannot start the daemons; we start them.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed"
fi
T_INST=$(date +%s%N)

# ---------------------------------------------------------------- share or stop old
# Test runs on one machine share the cluster: each registers its pid ($SLURM_USER_PID, e.g.
# test.sh's $$) in $RUN/users, and slurm-down.sh stops the daemons only when no registered
# process is still alive. A healthy cluster of ours is reused as it is.
register() { [ -n "${SLURM_USER_PID:-}" ] && mkdir -p "$RUN/users" && : > "$RUN/users/$SLURM_USER_PID"; return 0; }
if [ -s "$RUN/pids/slurmctld.pid" ] && kill -0 "$(cat "$RUN/pids/slurmctld.pid")" 2>/dev/null \
   && [ -s "$RUN/pids/slurmd.pid" ] && kill -0 "$(cat "$RUN/pids/slurmd.pid")" 2>/dev/null \
   && sinfo -h -n localhost -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
  register
  log "reusing the running cluster (conf: $CONF_DIR/slurm.conf, run dir: $RUN)"
  exit 0
fi
# If a previous run of this script left daemons, stop them (by pid file).
if [ -d "$RUN/pids" ]; then
  SLURM_RUN_DIR=$RUN SLURM_PURGE=0 SLURM_USER_PID= bash "$(dirname "$0")/slurm-down.sh" >/dev/null 2>&1 || true
fi

mkdir -p "$RUN"/{state,spool,log,pids,dev,users} "$CONF_DIR"
chmod 755 "$RUN"
register

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then      # postinst normally creates it
  install -d -o munge -g munge -m 0700 /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running (not ours, left alone)"
else
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$RUN/pids/munged.pid"
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null
  log "munged up (pid $(cat "$RUN/pids/munged.pid"))"
fi

# ---------------------------------------------------------------- node shape
# `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1
# CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105". Declaring exactly
# this avoids the "Node reconfigured socket/core boundaries" warning and the
# INVAL state you get when the config claims more than the hardware has.
HW=$(slurmd -C | head -1)
get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$HW"; }
CPUS=$(get CPUs); SOCK=$(get SocketsPerBoard); CORES=$(get CoresPerSocket)
THR=$(get ThreadsPerCore); MEM=$(get RealMemory)
NODE="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=$SOCK CoresPerSocket=$CORES ThreadsPerCore=$THR RealMemory=$MEM"
EXTRA=""
FAKE_CPUS=${SLURM_CPUS-8}
if [ -n "$FAKE_CPUS" ]; then   # fake a bigger node
  NODE="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$FAKE_CPUS RealMemory=$MEM"
  EXTRA="SlurmdParameters=config_overrides"
fi

# ---------------------------------------------------------------- fake GPUs
GRES_LINES=""
if [ "$GPUS" -gt 0 ]; then
  # Slurm 22.05 drops file-less GPUs ("Removing file-less GPU gpu:(null) from
  # final GRES list") and then drains the node ("gres/gpu count reported
  # lower than configured (0 < 4)"); regular files are refused too ("is not a
  # valid character or block device"). Character devices cloned from
  # /dev/null (c 1 3) satisfy it.
  for i in $(seq 0 $((GPUS - 1))); do
    [ -c "$RUN/dev/fakegpu$i" ] || { rm -f "$RUN/dev/fakegpu$i"; mknod -m 0666 "$RUN/dev/fakegpu$i" c 1 3; }
  done
  NODE="$NODE Gres=gpu:$GPUS"
  GRES_LINES="GresTypes=gpu"
  # AccountingStorageTRES=gres/gpu only with slurmdbd; with accounting none it
  # is fatal: "slurmdbd is required to run with TRES gres/gpu"
  [ "$ACCT" = slurmdbd ] && GRES_LINES="$GRES_LINES
AccountingStorageTRES=gres/gpu"
  cat > "$CONF_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$RUN/dev/fakegpu[0-$((GPUS - 1))]
EOF
else
  : > "$CONF_DIR/gres.conf"
fi

# ---------------------------------------------------------------- accounting
case "$ACCT" in
  none)     ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none" ;;
  jobcomp)  ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$RUN/log/jobcomp.log
JobAcctGatherType=jobacct_gather/none" ;;
  slurmdbd) ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations,limits,qos
JobCompType=jobcomp/filetxt
JobCompLoc=$RUN/log/jobcomp.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30" ;;
  *) echo "SLURM_ACCOUNTING must be none|jobcomp|slurmdbd" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------- cgroups
if [ "${SLURM_CGROUP:-0}" = 1 ]; then
  cat > "$CONF_DIR/cgroup.conf" <<EOF
CgroupPlugin=autodetect
ConstrainCores=yes
ConstrainRAMSpace=yes
ConstrainDevices=no
EOF
  TRACK="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity"
else
  rm -f "$CONF_DIR/cgroup.conf"
  # plain process tracking: works in containers/VMs without systemd/cgroups
  TRACK="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none"
fi

# ---------------------------------------------------------------- slurm.conf
cat > "$CONF_DIR/slurm.conf" <<EOF
# generated by slurm-up.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/pids/slurmctld.pid
SlurmdPidFile=$RUN/pids/slurmd.pid
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
$TRACK
MpiDefault=none
MailProg=/bin/true
# 1 = a node that an admin set DOWN stays DOWN until 'State=RESUME'
# (with 2 it comes straight back when slurmd re-registers)
ReturnToService=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SchedulerType=sched/backfill
# defaults (batch_sched_delay=3, sched_interval=60, bf_interval=30) gave ~3 s
# submit->done latency and 50 'true' jobs in 69 s; with these: ~1 s and 21 s
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEFMEM
PriorityType=priority/multifactor
PriorityWeightAge=1000
PriorityWeightPartition=10000
PriorityWeightJobSize=100
PriorityWeightQOS=10000
PriorityWeightFairshare=0
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$ACCT_LINES
$GRES_LINES
$EXTRA
$NODE State=UNKNOWN
PartitionName=regular Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=realtime Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10 PriorityJobFactor=100
EOF

# ---------------------------------------------------------------- slurmdbd
if [ "$ACCT" = slurmdbd ]; then
  DB=$RUN/mariadb
  rm -rf "$DB"; mkdir -p "$DB"; chown mysql:mysql "$DB"
  mariadb-install-db --user=mysql --datadir="$DB/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$RUN/log/mariadb-install.log" 2>&1
  # values slurmdbd checks for (otherwise it logs "Database settings not
  # recommended values: innodb_buffer_pool_size innodb_log_file_size ...");
  # 128M/256M still warn, 1G does not (RSS stays ~140 MB: pages are lazy)
  runuser -u mysql -- /usr/sbin/mariadbd --no-defaults --datadir="$DB/data" \
      --socket="$DB/mysqld.sock" --pid-file="$DB/mariadbd.pid" \
      --port="$DB_PORT" --bind-address=127.0.0.1 --log-error="$DB/mariadb.log" \
      --innodb-buffer-pool-size=1G --innodb-log-file-size=64M \
      --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  # (log/pid must be in a dir the mysql user can write, else it dies silently)
  for _ in $(seq 1 200); do mariadb-admin --socket="$DB/mysqld.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
  mariadb-admin --socket="$DB/mysqld.sock" ping >/dev/null || { tail "$DB/mariadb.log" >&2; exit 1; }
  cp "$DB/mariadbd.pid" "$RUN/pids/mariadbd.pid"
  mariadb --socket="$DB/mysqld.sock" <<'EOF'
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
  log "mariadb up on 127.0.0.1:$DB_PORT"
  cat > "$CONF_DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
LogFile=$RUN/log/slurmdbd.log
PidFile=$RUN/pids/slurmdbd.pid
EOF
  chmod 600 "$CONF_DIR/slurmdbd.conf"   # slurmdbd refuses a world-readable one
  slurmdbd
  for _ in $(seq 1 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -i add account science Description=ci Organization=ci >/dev/null
  sacctmgr -i add user root account=science >/dev/null
  sacctmgr -i add qos high Priority=1000 >/dev/null
  sacctmgr -i add qos debug Priority=10 MaxWall=00:30:00 >/dev/null
  sacctmgr -i modify user root set qos=normal,high,debug >/dev/null
  log "slurmdbd up; cluster/account/QOS (normal, high, debug) created"
else
  rm -f "$CONF_DIR/slurmdbd.conf"
fi

# ---------------------------------------------------------------- daemons
T_D=$(date +%s%N)
slurmctld -c -i          # -c: clear old state (job ids restart at 1)
for _ in $(seq 1 100); do { scontrol ping 2>/dev/null || true; } | grep -q 'is UP' && break; sleep 0.1; done
{ scontrol ping 2>/dev/null || true; } | grep -q 'is UP' || { echo "slurmctld not up" >&2; tail -20 "$RUN/log/slurmctld.log" >&2; exit 1; }
# -N localhost: the machine's hostname (here 'vm') is not the node name
slurmd -N localhost
ok=0
for _ in $(seq 1 300); do
  st=$(sinfo -h -n localhost -o '%t' 2>/dev/null | head -1 || true)
  case "$st" in idle|mix|alloc) ok=1; break ;; esac
  sleep 0.1
done
if [ $ok != 1 ]; then
  echo "node did not become idle (state '$st')" >&2
  tail -20 "$RUN/log/slurmctld.log" "$RUN/log/slurmd.log" >&2
  exit 1
fi
log "slurmctld+slurmd ready in $(el "$T_D")s (node state: $st)"

if [ "$SMOKE" = 1 ]; then
  T_J=$(date +%s%N)
  # (sbatch --wait polls with growing sleeps: it returned ~10 s after a job
  #  that finished in 3 s, so poll squeue ourselves)
  out=$(sbatch --parsable -o "$RUN/log/smoke-%j.out" --wrap 'echo smoke-ok')
  for _ in $(seq 1 600); do
    case "$(squeue -h -j "$out" -o %T 2>/dev/null || true)" in ''|COMPLETED|FAILED|CANCELLED) break ;; esac
    sleep 0.1
  done
  grep -q smoke-ok "$RUN/log/smoke-$out.out" || { echo "smoke job failed" >&2; scontrol show job "$out" >&2; exit 1; }
  log "smoke job $out completed in $(el "$T_J")s"
fi
log "total $(el)s (after install $(el "$T_INST")s); conf: $CONF_DIR/slurm.conf, run dir: $RUN"
