#!/usr/bin/env bash
# A Docker-compatible engine for the container tests (tests/e2e_containers.rs, and the whole suite with
# ISOBAR_E2E_RUNTIME=container): Debian's podman + runc serving the Docker API on a unix socket. No
# registry is used: every image the tests run is built locally.
# Usage: ci/setup-containers.sh [SOCKET]  (default /run/isobar-podman/podman.sock). Idempotent; needs
# root. Prints `export DOCKER_HOST=unix://SOCKET` last. With a Docker engine already at $DOCKER_HOST,
# it does nothing but check it.
set -euo pipefail
if ! command -v curl >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "curl is missing: install it and re-run" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
fi
if [ -n "${DOCKER_HOST:-}" ] && curl -fsS --unix-socket "${DOCKER_HOST#unix://}" http://d/_ping >/dev/null 2>&1; then
  echo "==> container engine: already at $DOCKER_HOST" >&2
  echo "export DOCKER_HOST=$DOCKER_HOST"
  exit 0
fi
SOCK=${1:-/run/isobar-podman/podman.sock}
CONF=/etc/containers/containers.conf.d/isobar.conf
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "podman and runc are missing: install them (apt-get install podman runc) and re-run" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends podman runc >/dev/null
fi
mkdir -p "$(dirname "$CONF")" "$(dirname "$SOCK")"
# crun can't set the default rlimits in this sandbox (EPERM) and doesn't support its hybrid cgroups:
# runc, cgroupfs and no default ulimits work.
cat > "$CONF" <<'C'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
C
# A service left running from a directory since removed (a temp clone CI ran in) still answers
# pings, but conmon fails in it ("Failed to get working directory") and no container starts: replace it.
PIDFILE=$(dirname "$SOCK")/service.pid
if [ -f "$PIDFILE" ] && pid=$(cat "$PIDFILE") && [ -d "/proc/$pid" ] \
   && readlink "/proc/$pid/cwd" | grep -q ' (deleted)$'; then
  kill "$pid"; rm -f "$SOCK"
  for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
fi
if ! curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; then
  rm -f "$SOCK"
  # From / so that the service (and every conmon it starts) never depends on the caller's directory.
  (cd / && exec setsid nohup podman system service --time=0 "unix://$SOCK" >/tmp/isobar-podman-service.log 2>&1 < /dev/null) &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 100); do curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null || { echo "the podman API did not come up; see /tmp/isobar-podman-service.log" >&2; exit 1; }
echo "==> container engine: $(podman --version), runc $(runc --version | head -1 | cut -d' ' -f3), API at unix://$SOCK" >&2
echo "export DOCKER_HOST=unix://$SOCK"
