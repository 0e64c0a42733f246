#!/bin/sh
# Build (or reuse) VictoriaLogs, the Loki sink's real peer: an Apache-2.0 log database that
# takes Loki's push API (protobuf + snappy and JSON, structured metadata included) and answers
# LogsQL queries. One `go install` from the Go module proxy into $VICTORIALOGS_DIR (default
# /var/cache/logdriver/victorialogs-<version>); prints the binary's path. Kept per machine,
# outside any clone: about a minute on 2 cores with warm Go caches, nothing after that.
set -eu
VICTORIALOGS_VERSION=v1.52.2
VICTORIALOGS_DIR=${VICTORIALOGS_DIR:-/var/cache/logdriver/victorialogs-$VICTORIALOGS_VERSION}
binary=$VICTORIALOGS_DIR/victoria-logs
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build VictoriaLogs" >&2; exit 1; }
mkdir -p "$VICTORIALOGS_DIR"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$work/bin"

echo "building VictoriaLogs $VICTORIALOGS_VERSION into $VICTORIALOGS_DIR" >&2
go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$VICTORIALOGS_VERSION" >&2
install -m 0755 "$work/bin/victoria-logs" "$binary"
echo "$binary"
