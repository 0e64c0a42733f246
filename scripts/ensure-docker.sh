#!/bin/sh
# Make sure a Docker engine is running and the test image exists.
# On a fresh Debian machine this installs docker.io and busybox-static from
# Debian's packages and starts dockerd in the background (no systemd needed).
set -eu
# Debian's engine on its default socket, whatever DOCKER_HOST says (ensure-engine.sh starts the others).
export DOCKER_HOST=unix:///var/run/docker.sock
log=${DOCKERD_LOG:-/var/log/dockerd-logdriver.log}

# `make -j` may run this from two targets at once: one at a time (dockerd must not inherit it).
exec 7>/var/lock/logdriver-ensure-docker.lock
flock 7

need_pkgs=""
command -v dockerd >/dev/null 2>&1 || need_pkgs="$need_pkgs docker.io"
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need_pkgs="$need_pkgs busybox-static"
if [ -n "$need_pkgs" ]; then
  exec 8>/var/lock/logdriver-apt.lock  # one apt at a time (apt-install.sh takes it too)
  flock 8
  echo "installing:$need_pkgs"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_pkgs >/dev/null
  exec 8>&-  # dockerd, started below, must not hold the lock
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 7>&- &
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
