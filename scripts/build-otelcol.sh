#!/bin/sh
# Build (or reuse) the OpenTelemetry Collector the OTLP sink's tests run against: the core
# OTLP receiver and the contrib file exporter, every module at one release, with the
# collector's own builder, from the Go module proxy, into $OTELCOL_DIR (default
# /var/cache/logdriver/otelcol-<version>). Prints the binary's path. Kept per machine,
# outside any clone: about 1.5 minutes on 2 cores with warm Go caches, nothing after that.
set -eu
OTELCOL_VERSION=0.161.0
OTELCOL_DIR=${OTELCOL_DIR:-/var/cache/logdriver/otelcol-$OTELCOL_VERSION}
binary=$OTELCOL_DIR/otelcol-logdriver
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build the OpenTelemetry Collector" >&2; exit 1; }
mkdir -p "$OTELCOL_DIR"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$work/bin"

echo "building the OpenTelemetry Collector $OTELCOL_VERSION into $OTELCOL_DIR" >&2
go install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION"
cat > "$work/manifest.yaml" <<YAML
dist:
  name: otelcol-logdriver
  description: The OpenTelemetry Collector logdriver's OTLP sink is tested against
  output_path: $work/dist
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v$OTELCOL_VERSION
exporters:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v$OTELCOL_VERSION
YAML
"$work/bin/builder" --config "$work/manifest.yaml" >&2
install -m 0755 "$work/dist/otelcol-logdriver" "$binary"
echo "$binary"
