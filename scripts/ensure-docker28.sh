#!/bin/sh
# Make sure the second engine runs: dockerd 28.5.2 on containerd 1.7.28 (built from the Go
# module proxy by build-docker28.sh, cached per machine), beside Debian's dockerd 20.10, with the
# test image. Prints the DOCKER_HOST to reach it.
#
# Everything of its own lives apart from the default engine: socket, data root, exec root,
# pidfile, containerd, daemon config and bridge. Both engines find legacy plugin sockets in
# /run/docker/plugins, so one running logdriver serves both.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=logdriver-docker28
run=/run/$name
data=/var/lib/$name
log=${DOCKERD28_LOG:-/var/log/$name.log}
host=unix://$run/docker.sock
# Its own bridge: a second dockerd with --bridge=none deletes docker0 under the other engine.
bridge=ld28br0
subnet_gateway=172.30.0.1/16

if DOCKER_HOST=$host docker info >/dev/null 2>&1; then
  DOCKER_HOST=$host "$here/build-test-image.sh" logdriver-test >&2
  echo "$host"
  exit 0
fi

"$here/apt-install.sh" ip iproute2 >&2
engine_dir=$("$here/build-docker28.sh")
"$here/ensure-docker.sh" >&2  # runc, iptables and busybox come with Debian's engine
mkdir -p "$run" "$data"
chmod 700 "$run" "$data"

if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add name "$bridge" type bridge
  ip addr add "$subnet_gateway" dev "$bridge"
fi
ip link set "$bridge" up

cat > "$run/containerd.toml" <<EOF
version = 2
root = "$data/containerd"
state = "$run/containerd"
# Only dockerd talks to this containerd; the CRI plugin (Kubernetes) is not needed.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run/containerd/containerd.sock"
[ttrpc]
  address = "$run/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
cat > "$run/daemon.json" <<EOF
{
  "hosts": ["$host"],
  "data-root": "$data/docker",
  "exec-root": "$run/exec",
  "pidfile": "$run/docker.pid",
  "containerd": "$run/containerd/containerd.sock",
  "bridge": "$bridge"
}
EOF

# The shim and docker-proxy are found on PATH: ours first, ahead of Debian's older ones.
export PATH="$engine_dir:$PATH"
if ! [ -S "$run/containerd/containerd.sock" ] || ! pgrep -f "containerd --config $run/containerd.toml" >/dev/null; then
  echo "starting containerd 1.7.28 (log: $log)" >&2
  nohup "$engine_dir/containerd" --config "$run/containerd.toml" >>"$log" 2>&1 &
  i=0
  until [ -S "$run/containerd/containerd.sock" ]; do
    i=$((i + 1))
    [ "$i" -le 60 ] || { echo "containerd did not come up:" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.5
  done
fi
echo "starting dockerd 28.5.2 (log: $log)" >&2
nohup "$engine_dir/dockerd" --config-file "$run/daemon.json" >>"$log" 2>&1 &
i=0
until DOCKER_HOST=$host docker info >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -le 60 ] || { echo "dockerd 28 did not come up:" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 1
done
DOCKER_HOST=$host "$here/build-test-image.sh" logdriver-test >&2
echo "$host"
