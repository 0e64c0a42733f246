#!/bin/sh
# Build (or reuse) the agent `make bench` compares logdriver against: json-file tailed by an
# OpenTelemetry Collector (filelog receiver with its container parser, batch processor, OTLP/HTTP
# and Kafka exporters), at the release the test peer uses, with the collector's own
# builder from the Go module proxy, into $OTELCOL_DIR (default
# /var/cache/logdriver/otelcol-agent-<version>). Prints the binary's path. Kept per machine.
# The proxy refuses the zips of pkg/stanza, pkg/kafka/configkafka and pkg/kafka/topic v0.161.0,
# so those libraries are v0.160.0. (It refuses
# exporter/elasticsearchexporter's, 403 for v0.161.0-v0.163.0 and 404 before: the second
# destination compared is Kafka.)
set -eu
OTELCOL_VERSION=0.161.0
STANZA_VERSION=0.160.0
OTELCOL_DIR=${OTELCOL_DIR:-/var/cache/logdriver/otelcol-agent-$OTELCOL_VERSION-kafka}
binary=$OTELCOL_DIR/otelcol-agent
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "go is needed to build the OpenTelemetry Collector" >&2; exit 1; }
mkdir -p "$OTELCOL_DIR"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$work/bin"

echo "building the agent Collector $OTELCOL_VERSION into $OTELCOL_DIR" >&2
go install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION"
contrib=github.com/open-telemetry/opentelemetry-collector-contrib
cat > "$work/manifest.yaml" <<YAML
dist:
  name: otelcol-agent
  description: json-file + an agent, the route logdriver's benchmarks compare against
  output_path: $work/dist
receivers:
  - gomod: $contrib/receiver/filelogreceiver v$OTELCOL_VERSION
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v$OTELCOL_VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/otlphttpexporter v$OTELCOL_VERSION
  - gomod: $contrib/exporter/kafkaexporter v$OTELCOL_VERSION
replaces:
  - $contrib/pkg/stanza => $contrib/pkg/stanza v$STANZA_VERSION
  - $contrib/pkg/kafka/configkafka => $contrib/pkg/kafka/configkafka v$STANZA_VERSION
  - $contrib/pkg/kafka/topic => $contrib/pkg/kafka/topic v$STANZA_VERSION
YAML
"$work/bin/builder" --config "$work/manifest.yaml" >&2
install -m 0755 "$work/dist/otelcol-agent" "$binary"
echo "$binary"
