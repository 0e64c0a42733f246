#!/bin/sh
# ensure-engine.sh 28|29: make sure a second engine runs beside Debian's dockerd 20.10, with
# the test image, and print the DOCKER_HOST to reach it:
#   28: dockerd 28.5.2 on containerd 1.7.28 and Debian's runc (build-docker28.sh)
#   29: dockerd 29.8.0 on containerd 2.3.5 and runc 1.5.1 (build-docker29.sh)
# Both are built from the Go module proxy and cached per machine.
#
# Everything of its own lives apart from the default engine: socket, data root, exec root,
# pidfile, containerd, daemon config and bridge. Every engine finds legacy plugin sockets in
# /run/docker/plugins, so one running logdriver serves them all.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  28) version=28.5.2 containerd_version=1.7.28 subnet_gateway=172.30.0.1/16 ;;
  29) version=29.8.0 containerd_version=2.3.5 subnet_gateway=172.31.0.1/16 ;;
  *) echo "usage: $0 28|29" >&2; exit 2 ;;
esac
name=logdriver-docker$1
run=/run/$name
data=/var/lib/$name
log=/var/log/$name.log
host=unix://$run/docker.sock
# Its own bridge: a second dockerd with --bridge=none deletes docker0 under the other engine.
bridge=ld$1br0

if DOCKER_HOST=$host docker info >/dev/null 2>&1; then
  DOCKER_HOST=$host "$here/build-test-image.sh" logdriver-test >&2
  echo "$host"
  exit 0
fi

"$here/apt-install.sh" ip iproute2 >&2
engine_dir=$("$here/build-docker$1.sh")
# What it takes from Debian, without touching Debian's engine (the tests restart that one
# while this one's tests run): iptables, busybox for the test image, and runc for 28.
"$here/apt-install.sh" iptables iptables >&2
"$here/apt-install.sh" busybox busybox-static >&2
[ "$1" != 28 ] || "$here/apt-install.sh" runc runc >&2
mkdir -p "$run" "$data"
chmod 700 "$run" "$data"

if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add name "$bridge" type bridge
  ip addr add "$subnet_gateway" dev "$bridge"
fi
ip link set "$bridge" up

# The sockets are given on the command line: containerd 2 ignores 1.x's top-level [grpc]
# table and would take the default /run/containerd/containerd.sock of another engine.
sock=$run/containerd/containerd.sock
if [ "$1" = 28 ]; then
  echo 'version = 2' > "$run/containerd.toml"
  disabled='"io.containerd.grpc.v1.cri"'
else
  echo 'version = 3' > "$run/containerd.toml"
  disabled='"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime"'
fi
cat >> "$run/containerd.toml" <<EOF
# Only dockerd talks to this containerd; the CRI plugins (Kubernetes) are not needed.
disabled_plugins = [$disabled]
EOF
firewall=""
# Engine 29 deletes and re-creates the shared DOCKER chains at start, under the other engines.
[ "$1" = 28 ] || firewall='"iptables": false, "ip6tables": false,'
cat > "$run/daemon.json" <<EOF
{
  "hosts": ["$host"],
  "data-root": "$data/docker",
  "exec-root": "$run/exec",
  "pidfile": "$run/docker.pid",
  "containerd": "$sock",
  $firewall
  "bridge": "$bridge"
}
EOF

# The shim, runc and docker-proxy are found on PATH: ours first, ahead of Debian's older ones.
export PATH="$engine_dir:$PATH"
# A socket that takes a connection, not merely a socket file: one left by a containerd that
# was killed (a stopped machine, the end of a CI run) exists but refuses, and a dockerd started
# against it gives up at once ("failed to get containerd plugins").
accepts() {
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null
}
if ! accepts "$sock" || ! pgrep -f "containerd --config $run/containerd.toml" >/dev/null; then
  pkill -f "containerd --config $run/containerd.toml" 2>/dev/null || true
  rm -f "$sock" "$sock.ttrpc"
  echo "starting containerd $containerd_version (log: $log)" >&2
  nohup "$engine_dir/containerd" --config "$run/containerd.toml" --address "$sock" \
    --root "$data/containerd" --state "$run/containerd" >>"$log" 2>&1 &
  i=0
  until accepts "$sock"; do
    i=$((i + 1))
    [ "$i" -le 60 ] || { echo "containerd did not come up:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.5
  done
fi
# A dockerd that exits while starting (containerd still loading its plugins) is started again,
# up to three times; one that keeps running is waited for.
attempt=1
while :; do
  echo "starting dockerd $version (log: $log)" >&2
  nohup "$engine_dir/dockerd" --config-file "$run/daemon.json" >>"$log" 2>&1 &
  pid=$!
  i=0
  until DOCKER_HOST=$host docker info >/dev/null 2>&1; do
    i=$((i + 1))
    kill -0 "$pid" 2>/dev/null || break
    [ "$i" -le 60 ] || { echo "dockerd $version did not come up:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 1
  done
  DOCKER_HOST=$host docker info >/dev/null 2>&1 && break
  [ "$attempt" -lt 3 ] || { echo "dockerd $version exited while starting:" >&2; tail -20 "$log" >&2; exit 1; }
  attempt=$((attempt + 1))
  sleep 2
done
DOCKER_HOST=$host "$here/build-test-image.sh" logdriver-test >&2
echo "$host"
