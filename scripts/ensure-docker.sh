#!/bin/sh
# Make sure a Docker engine is running and the test image exists.
# On a fresh Debian machine this installs docker.io and busybox-static from
# Debian's packages and starts dockerd in the background (no systemd needed).
set -eu
# Debian's engine on its default socket, whatever DOCKER_HOST says (ensure-docker28.sh starts the other).
export DOCKER_HOST=unix:///var/run/docker.sock
log=${DOCKERD_LOG:-/var/log/dockerd-logdriver.log}

need_pkgs=""
command -v dockerd >/dev/null 2>&1 || need_pkgs="$need_pkgs docker.io"
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need_pkgs="$need_pkgs busybox-static"
if [ -n "$need_pkgs" ]; then
  echo "installing:$need_pkgs"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_pkgs >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 &
  i=0
  until docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
      echo "dockerd did not come up; last log lines:" >&2
      tail -20 "$log" >&2
      exit 1
    fi
    sleep 1
  done
fi
"$(dirname "$0")/build-test-image.sh" logdriver-test
