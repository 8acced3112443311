#!/usr/bin/env bash
# container-down.sh (from the team recipes) - after the tests: remove the stopped containers
# left in the private store of container-up.sh (a test killed mid-way), keeping the images
# and the cached rootfs for the next run. Running containers are left alone: they may be
# another test run's on the same machine (the test tasks end by themselves). --purge also
# deletes the store and the cache. Never touches /var/lib/containers.
set -uo pipefail
STATE=${HEXFLOW_CONTAINER_STATE:-/var/tmp/hexflow-containers}
[ -f "$STATE/containers.conf" ] || { echo "container-down: no state at $STATE" >&2; exit 0; }
export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
left=$(podman ps -aq --filter status=exited --filter status=created 2>/dev/null || true)
for id in $left; do podman rm -f -t 0 "$id" >/dev/null 2>&1 || true; done
[ -n "$left" ] && echo "container-down: removed $(echo "$left" | wc -w) leftover container(s)" >&2
if [ "${1:-}" = --purge ]; then
  podman system reset -f >/dev/null 2>&1
  if grep -q " $STATE/" /proc/mounts; then
    echo "container-down: mounts still present under $STATE, not deleting" >&2; exit 1
  fi
  rm -rf "$STATE"
fi
exit 0
