#!/bin/sh
# Build logdriver as a managed (v2) plugin without any image registry, then
# create and enable it:  scripts/build-plugin.sh [NAME] [STATE_DIR]
# State (FIFO registry, docker logs store, spools, dead letters) lives in the plugin's
# propagated mount, which dockerd creates; re-creating NAME moves the old plugin's state to
# the new one. With STATE_DIR, the propagated mount is a link to that host directory.
# or push it to a registry as REGISTRY/logdriver:TAG and :latest (nothing is enabled):
#                        scripts/build-plugin.sh --push REGISTRY TAG
#
# rootfs: debootstrap (minbase + python3) from the Debian mirror this host's apt
# uses, cached as a tarball; logdriver and its dependencies are installed into
# /opt/logdriver from wheels built on this host (same Debian, same CPython minor).
set -eu
PUSH=""
if [ "${1:-}" = "--push" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --push REGISTRY TAG" >&2; exit 2; }
  PUSH="$2/logdriver"; TAG=$3
  set -- "push-$(echo "$2" | tr -c 'a-zA-Z0-9\n' '_')"
fi
NAME=${1:-logdriver}
STATE=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$ROOT/build"
# A directory of its own: builds for several engines may run at once.
BUILD=${PLUGIN_BUILD_DIR:-$(mktemp -d "$ROOT/build/plugin-XXXXXX")}
CACHE=${LOGDRIVER_ROOTFS_CACHE:-/var/cache/logdriver/rootfs-bookworm.tar.gz}

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in this host's apt sources" >&2; exit 1; }
"$ROOT/scripts/apt-install.sh" debootstrap debootstrap

# One build at a time past this point for the shared caches: the rootfs tarball, and the
# source tree and cargo target the wheel is built from.
exec 9>"$ROOT/build/.build-plugin.lock"
flock 9
if [ ! -s "$CACHE" ]; then
  echo "debootstrap bookworm rootfs (once; cached in $CACHE)"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include=python3 bookworm "$tmp" "$mirror" >/dev/null
  rm -rf "$tmp"/var/cache/apt/* "$tmp"/var/lib/apt/lists/* "$tmp"/usr/share/doc "$tmp"/usr/share/man "$tmp"/usr/share/locale
  mkdir -p "$(dirname "$CACHE")"
  tar -C "$tmp" -czf "$CACHE.tmp" . && mv "$CACHE.tmp" "$CACHE"
  rm -rf "$tmp"
fi

# The rootfs with logdriver installed is made once per state of the sources (a commit,
# plus any local change), then copied for each build.
tree=$(cd "$ROOT" && { git rev-parse HEAD; git status --porcelain; git diff HEAD; } 2>/dev/null | sha256sum | cut -c1-16)
prepared="$ROOT/build/rootfs-$tree"
if [ ! -d "$prepared" ]; then
  rm -rf "$prepared.tmp" "$ROOT/build/wheels.tmp"
  mkdir -p "$prepared.tmp"
  tar -C "$prepared.tmp" -xzf "$CACHE"
  CARGO_TARGET_DIR="$ROOT/native/target" "$PY" -m pip wheel -q -w "$ROOT/build/wheels.tmp" "$ROOT"
  "$PY" -m pip install -q --no-index --find-links "$ROOT/build/wheels.tmp" --target "$prepared.tmp/opt/logdriver" logdriver
  rm -rf "$ROOT/build/wheels.tmp"
  mv "$prepared.tmp" "$prepared"
fi
rm -rf "$BUILD"
mkdir -p "$BUILD"
cp -a "$prepared" "$BUILD/rootfs"
# Which build this is, in the rootfs: two builds of the same sources still differ.
echo "${TAG:-local} $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$BUILD/rootfs/opt/logdriver/BUILD"
cp "$ROOT/config.json" "$BUILD/config.json"
flock -u 9

if [ -n "$PUSH" ]; then
  refs="$PUSH:$TAG"
  [ "$TAG" = latest ] || refs="$refs $PUSH:latest"
  for ref in $refs; do
    docker plugin rm -f "$ref" >/dev/null 2>&1 || true
    docker plugin create "$ref" "$BUILD" >/dev/null
    docker plugin push "$ref"
    docker plugin rm -f "$ref" >/dev/null
  done
  rm -rf "$BUILD"
  echo "pushed $refs"
  exit 0
fi

plugins="$(docker info -f '{{.DockerRootDir}}')/plugins"
kept=""
if old_id=$(docker plugin inspect -f '{{.Id}}' "$NAME" 2>/dev/null); then
  docker plugin disable -f "$NAME" >/dev/null 2>&1 || true
  previous="$plugins/$old_id/propagated-mount"
  if [ -d "$previous" ] && [ ! -L "$previous" ]; then
    # dockerd bind-mounts the directory on itself at enable; unmounted, it renames in place.
    if mountpoint -q "$previous"; then umount -R "$previous"; fi
    kept=$(mktemp -d "$plugins/.logdriver-kept-XXXXXX")
    mv "$previous" "$kept/state"
  fi
  docker plugin rm -f "$NAME" >/dev/null
fi
docker plugin create "$NAME" "$BUILD" >/dev/null
new_id=$(docker plugin inspect -f '{{.Id}}' "$NAME")
target="$plugins/$new_id/propagated-mount"
if [ -n "$STATE" ]; then
  mkdir -p "$STATE" && chmod 700 "$STATE"
  ln -sfn "$(cd "$STATE" && pwd)" "$target"
else
  mkdir -p "$target" && chmod 700 "$target"
fi
if [ -n "$kept" ]; then  # a rename within the data root; a copy to another file system
  find "$kept/state" -mindepth 1 -maxdepth 1 -exec mv -t "$target/" {} +
  rm -rf "$kept"
fi
# --timeout 0: the CLI's default 30 s would also cut every `docker logs -f` at 30 s.
docker plugin enable --timeout 0 "$NAME" >/dev/null
rm -rf "$BUILD"
echo "plugin $NAME enabled; state in ${STATE:-$plugins/$new_id/propagated-mount}; use --log-driver $NAME"
