#!/usr/bin/env bash
# slurm-down.sh (from the team recipes) - stop what scripts/ci/slurm-up.sh started, by PID
# (pid files in $SLURM_RUN_DIR/pids). SLURM_PURGE=1 (default) also deletes the run dir.
set -uo pipefail
RUN=${SLURM_RUN_DIR:-/tmp/hexflow-slurm}
PURGE=${SLURM_PURGE:-1}
export SLURM_CONF=${SLURM_CONF_DIR:-/etc/slurm}/slurm.conf

# SLURM_USER_PID: this user is done; leave the cluster up while another registered user
# (a process still alive) needs it.
if [ -n "${SLURM_USER_PID:-}" ] && [ -d "$RUN/users" ]; then
  rm -f "$RUN/users/$SLURM_USER_PID"
  for f in "$RUN"/users/*; do
    [ -e "$f" ] || continue
    if kill -0 "$(basename "$f")" 2>/dev/null; then
      echo "slurm-down: still used by pid $(basename "$f"), left running"
      exit 0
    fi
    rm -f "$f"
  done
fi

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
stop_pidfiles() {   # TERM all given daemons at once, wait (15 s), then KILL
  local f pid pids=() names=()
  for f in "$@"; do
    [ -s "$RUN/pids/$f.pid" ] || continue
    pid=$(cat "$RUN/pids/$f.pid")
    alive "$pid" && { kill -TERM "$pid"; pids+=("$pid"); names+=("$f($pid)"); }
    rm -f "$RUN/pids/$f.pid"
  done
  for _ in $(seq 1 150); do
    local any=0; for pid in "${pids[@]}"; do alive "$pid" && any=1; done
    [ $any = 0 ] && break; sleep 0.1
  done
  for pid in "${pids[@]}"; do alive "$pid" && { echo "$pid ignored TERM, KILL"; kill -KILL "$pid"; }; done
  [ ${#names[@]} -gt 0 ] && echo "stopped ${names[*]}"
  return 0
}

# cancel jobs first so slurmstepd/job processes do not outlive slurmd
if [ -s "$RUN/pids/slurmctld.pid" ] && alive "$(cat "$RUN/pids/slurmctld.pid")"; then
  ids=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  [ -n "${ids// }" ] && timeout 10 scancel $ids 2>/dev/null
  for _ in $(seq 1 50); do
    [ -z "$(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.2
  done
fi
# (one by one slurmd ~1.5 s, slurmctld ~2-3 s to exit; in parallel ~2-3 s)
stop_pidfiles slurmd slurmctld slurmdbd
stop_pidfiles mariadbd munged     # munged only if slurm-up.sh started it
[ "$PURGE" = 1 ] && rm -rf "$RUN"
exit 0
