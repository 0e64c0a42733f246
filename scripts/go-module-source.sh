#!/bin/sh
# go-module-source.sh MODULE@VERSION DEST: a writable copy of a module's source tree from the
# Go module proxy, without its vendor directory (the engine builds resolve modules instead).
# `go mod download` needs a module to run in; the sources land read-only in the module cache.
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && go mod init fetch >/dev/null 2>&1)
src=$(cd "$work" && GOTOOLCHAIN=local go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "go mod download $1 failed" >&2; exit 1; }
cp -r "$src" "$2" && chmod -R u+w "$2" && rm -rf "$2/vendor"
