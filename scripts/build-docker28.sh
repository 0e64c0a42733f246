#!/bin/sh
# Build (or reuse) dockerd 28.5.2, docker-proxy and containerd 1.7.28 with its runc shim from the
# Go module proxy, into $ENGINE_DIR (default /var/cache/logdriver/engines/docker-28.5.2).
# Prints that directory. No image registry or git needed; 2.5 minutes on 2 cores with empty Go
# caches (measured), nothing after that (the binaries are kept per machine, outside any clone).
set -eu
DOCKER_VERSION=28.5.2
CONTAINERD_VERSION=1.7.28
ENGINE_DIR=${ENGINE_DIR:-/var/cache/logdriver/engines/docker-$DOCKER_VERSION}
BINARIES="dockerd docker-proxy containerd containerd-shim-runc-v2"

have_all() {
  for b in $BINARIES; do [ -x "$ENGINE_DIR/$b" ] || return 1; done
}
if have_all; then echo "$ENGINE_DIR"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build dockerd $DOCKER_VERSION" >&2; exit 1; }
mkdir -p "$ENGINE_DIR"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

fetch() { "$(dirname "$0")/go-module-source.sh" "$@"; }  # MODULE@VERSION DEST

echo "building containerd $CONTAINERD_VERSION into $ENGINE_DIR" >&2
fetch "github.com/containerd/containerd@v$CONTAINERD_VERSION" "$work/containerd"
(cd "$work/containerd" &&
  go build -mod=mod -trimpath -tags 'no_btrfs no_devmapper no_zfs' \
    -ldflags "-s -w -X github.com/containerd/containerd/version.Version=$CONTAINERD_VERSION" \
    -o "$ENGINE_DIR/" ./cmd/containerd ./cmd/containerd-shim-runc-v2)

echo "building dockerd $DOCKER_VERSION into $ENGINE_DIR" >&2
fetch "github.com/docker/docker@v$DOCKER_VERSION+incompatible" "$work/docker"
# The tag ships vendor.mod instead of go.mod (moby builds in GOPATH mode); give it a go.mod to
# name the module and build with vendor.mod's requirements.
printf 'module github.com/docker/docker\n\ngo 1.24.0\n' > "$work/docker/go.mod"
(cd "$work/docker" &&
  go build -mod=mod -modfile=vendor.mod -trimpath \
    -tags 'netgo osusergo static_build exclude_graphdriver_btrfs' \
    -ldflags "-s -w -X github.com/docker/docker/dockerversion.Version=$DOCKER_VERSION -X github.com/docker/docker/dockerversion.GitCommit=gomodproxy" \
    -o "$ENGINE_DIR/" ./cmd/dockerd ./cmd/docker-proxy)
have_all || { echo "build of $BINARIES incomplete in $ENGINE_DIR" >&2; exit 1; }
echo "$ENGINE_DIR"
