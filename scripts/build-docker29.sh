#!/bin/sh
# Build (or reuse) Docker Engine 29.8.0 from the Go module proxy: dockerd and docker-proxy
# (module github.com/moby/moby/v2 at v2.0.0-beta.24), containerd 2.3.5 with its runc shim, and
# runc 1.5.1 (engine 29 asks runc for a time namespace, which Debian's runc 1.1 refuses), into
# $ENGINE_DIR (default /var/cache/logdriver/engines/docker-29.8.0). Prints that directory.
# The versions are the ones the moby module pins. About 6 minutes on 2 cores with warm Go
# caches, nothing after that (the binaries are kept per machine, outside any clone).
set -eu
DOCKER_VERSION=29.8.0
MOBY_MODULE=github.com/moby/moby/v2@v2.0.0-beta.24
CONTAINERD_VERSION=2.3.5
RUNC_VERSION=1.5.1
ENGINE_DIR=${ENGINE_DIR:-/var/cache/logdriver/engines/docker-$DOCKER_VERSION}
BINARIES="dockerd docker-proxy containerd containerd-shim-runc-v2 runc"
here=$(cd "$(dirname "$0")" && pwd)

have_all() {
  for b in $BINARIES; do [ -x "$ENGINE_DIR/$b" ] || return 1; done
}
if have_all; then echo "$ENGINE_DIR"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build dockerd $DOCKER_VERSION" >&2; exit 1; }
mkdir -p "$ENGINE_DIR"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

fetch() { "$(dirname "$0")/go-module-source.sh" "$@"; }  # MODULE@VERSION DEST

# The three builds are independent: run them side by side (each is mostly one long link).
(
  echo "building runc $RUNC_VERSION into $ENGINE_DIR" >&2
  # runc's seccomp filter links libseccomp (apt-install.sh installs when the "command" is missing).
  dpkg -s libseccomp-dev >/dev/null 2>&1 || "$here/apt-install.sh" libseccomp-dev-missing libseccomp-dev pkg-config >&2
  fetch "github.com/opencontainers/runc@v$RUNC_VERSION" "$work/runc"
  cd "$work/runc" && CGO_ENABLED=1 go build -mod=mod -trimpath -buildmode=pie -tags seccomp \
    -ldflags "-s -w -X main.version=$RUNC_VERSION" -o "$ENGINE_DIR/runc" .
) &
runc_build=$!
(
  echo "building containerd $CONTAINERD_VERSION into $ENGINE_DIR" >&2
  fetch "github.com/containerd/containerd/v2@v$CONTAINERD_VERSION" "$work/containerd"
  cd "$work/containerd" && CGO_ENABLED=0 go build -mod=mod -trimpath -tags 'no_btrfs no_devmapper no_zfs' \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    -o "$ENGINE_DIR/" ./cmd/containerd ./cmd/containerd-shim-runc-v2
) &
containerd_build=$!
echo "building dockerd $DOCKER_VERSION into $ENGINE_DIR" >&2
fetch "$MOBY_MODULE" "$work/moby"
(cd "$work/moby" && CGO_ENABLED=0 go build -mod=mod -trimpath \
  -tags 'netgo osusergo static_build nri_no_wasm exclude_graphdriver_btrfs' \
  -ldflags "-s -w -X github.com/moby/moby/v2/dockerversion.Version=$DOCKER_VERSION -X github.com/moby/moby/v2/dockerversion.GitCommit=gomodproxy" \
  -o "$ENGINE_DIR/" ./cmd/dockerd ./cmd/docker-proxy)
wait "$runc_build"
wait "$containerd_build"
have_all || { echo "build of $BINARIES incomplete in $ENGINE_DIR" >&2; exit 1; }
echo "$ENGINE_DIR"
