# logdriver — see README.md. Every target that needs the venv creates it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The real forward-protocol server the Fluentd tests and benchmark run against (npm).
PEERS  := tests/peers/fluent/node_modules/.package-lock.json
# A real OpenSearch node for the Elasticsearch sink's tests (jars from Maven Central).
OS_JARS := tests/peers/opensearch/target/dependency/.copied
# A real Elasticsearch 7.10.2 (the open-source build) beside it, same way.
ES_JARS := tests/peers/elasticsearch/target/dependency/.copied
# A real Apache Kafka 4.4.0 (KRaft) for the Kafka sink's tests (jars from Maven Central).
KAFKA_JARS := tests/peers/kafka/target/dependency/.copied

export LOGDRIVER_STATE_DIR ?= /var/lib/logdriver

.PHONY: otelcol victorialogs reference peers venv native run test test-setup test-unit test-integration test-engines lint alerts typecheck proto plugin plugin-push bench clean docker docker28 docker29

RUST_SOURCES := Cargo.toml $(wildcard native/Cargo.toml native/src/*.rs native/lines/Cargo.toml native/lines/src/*.rs sinks/*/native/Cargo.toml sinks/*/native/src/*.rs)

# The Rust extensions are built with one of Cargo.toml's profiles. Contributors' builds (venv,
# test, test-unit, lint) use dev-editable: optimised, but no LTO and incremental, so a fresh clone
# builds in minutes and a Rust edit in seconds (`make native` rebuilds in place). `make run`,
# `make bench` and the managed plugin's wheel use release (LTO, one codegen unit).
CARGO_PROFILE ?= dev-editable
NATIVE := $(VENV)/.native-$(CARGO_PROFILE)

$(STAMP): pyproject.toml
	@command -v cargo >/dev/null || { echo "cargo (Rust) is needed to build native/: install it with rustup" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	SETUPTOOLS_RUST_CARGO_PROFILE=$(CARGO_PROFILE) $(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.native-*
	touch $@ $(NATIVE)

# A Rust edit: rebuild the extensions in place (no pip, no isolated build environment).
$(NATIVE): $(STAMP) $(RUST_SOURCES)
	rm -f $(VENV)/.native-*
	SETUPTOOLS_RUST_CARGO_PROFILE=$(CARGO_PROFILE) $(PY) -c 'from setuptools import setup; setup()' -q build_rust --inplace
	touch $@

native: $(NATIVE)

venv: $(NATIVE)

$(PEERS): tests/peers/fluent/package.json tests/peers/fluent/package-lock.json
	@command -v npm >/dev/null || ./scripts/apt-install.sh npm nodejs npm
	cd tests/peers/fluent && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(OS_JARS): tests/peers/opensearch/pom.xml
	@command -v mvn >/dev/null || ./scripts/apt-install.sh mvn maven
	cd tests/peers/opensearch && mvn -q -B dependency:copy-dependencies
	touch $@

# Order-only: one Maven at a time (parallel runs share the local repository ~/.m2).
$(ES_JARS): tests/peers/elasticsearch/pom.xml | $(OS_JARS)
	@command -v mvn >/dev/null || ./scripts/apt-install.sh mvn maven
	cd tests/peers/elasticsearch && mvn -q -B dependency:copy-dependencies
	touch $@

$(KAFKA_JARS): tests/peers/kafka/pom.xml | $(ES_JARS)
	@command -v mvn >/dev/null || ./scripts/apt-install.sh mvn maven
	cd tests/peers/kafka && mvn -q -B dependency:copy-dependencies
	touch $@

## The OpenTelemetry Collector the OTLP sink's tests run against (built from the Go module proxy, cached).
otelcol:
	./scripts/build-otelcol.sh

## VictoriaLogs, which takes Loki pushes, for the Loki sink's tests (Go module proxy, cached).
victorialogs:
	./scripts/build-victorialogs.sh

# The sinks, from their one registration (pyproject.toml's logdriver.sinks entry points).
# Each sink that ships over the network has a peer-<sink> rule: its real peer, which the
# tests run against. A new sink without one fails `make test` at once ("No rule to make
# target peer-<sink>"), not later in its tests.
SINKS := $(shell sed -n '/^\[project.entry-points."logdriver.sinks"\]/,/^\[/s/^\([a-z0-9_]*\) = .*/\1/p' pyproject.toml)
LOCAL_SINKS := file discard
PEER_TARGETS := $(addprefix peer-,$(filter-out $(LOCAL_SINKS),$(SINKS)))
.PHONY: $(PEER_TARGETS)

peer-fluentd: $(PEERS)
peer-elasticsearch: $(OS_JARS) $(ES_JARS)
peer-kafka: $(KAFKA_JARS)
peer-otlp: otelcol
peer-loki: victorialogs

peers: $(PEER_TARGETS)

## Serve Docker as a legacy plugin at /run/docker/plugins/logdriver.sock (file sink, docker logs store).
run: docker
	@$(MAKE) --no-print-directory native CARGO_PROFILE=release
	LOGDRIVER_METRICS_ADDRESS=$${LOGDRIVER_METRICS_ADDRESS:-127.0.0.1:9323} $(PY) -m logdriver

## Everything CI runs: lint, types, generated-code drift, unit tests, and the integration tests once
## per engine CI keeps: Debian's dockerd 20.10 and dockerd 29.8 (built from the Go module proxy,
## cached). The setup steps run side by side (-j), then the tests in two processes, one per engine.
test:
	$(MAKE) -j4 --output-sync=target test-setup
	$(VENV)/bin/mypy
	PYO3_PYTHON=$(CURDIR)/$(PY) cargo test -q --workspace --no-default-features
	PY=$(PY) ./scripts/run-tests.sh

test-setup: $(NATIVE) $(PEER_TARGETS) docker docker29 lint alerts

test-unit: $(NATIVE)
	$(PY) -m pytest -q tests/unit

test-integration: $(NATIVE) $(PEER_TARGETS) docker docker29
	$(PY) -m pytest -q tests/integration

## The integration tests on other engines: make test-engines ENGINES=docker-28.5 (or all).
ENGINES ?= docker-28.5
test-engines: $(NATIVE) $(PEER_TARGETS) docker docker28 docker29
	LOGDRIVER_TEST_ENGINES=$(ENGINES) $(PY) -m pytest -q tests/integration

docker:
	./scripts/ensure-docker.sh

## The other engines beside Debian's 20.10 (each prints its DOCKER_HOST): dockerd 28.5.2 on
## containerd 1.7.28, dockerd 29.8.0 on containerd 2.3.5 and runc 1.5.1.
docker28: docker
	./scripts/ensure-engine.sh 28

docker29:  # builds first, then starts Debian's engine if needed: the build overlaps the rest of -j
	./scripts/ensure-engine.sh 29

## Style and static checks: ruff (lint and format), rustfmt and clippy on native/.
lint: $(NATIVE)
	$(VENV)/bin/ruff check logdriver sinks tests bench
	$(VENV)/bin/ruff format --check logdriver sinks tests bench
	@# rustfmt and clippy come with rustup's default profile; a toolchain without them skips, loudly.
	if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; else echo "rustfmt missing: skipped"; fi
	if cargo clippy --version >/dev/null 2>&1; then \
	  PYO3_PYTHON=$(CURDIR)/$(PY) cargo clippy -q --workspace --no-default-features --all-targets -- -D warnings; \
	  else echo "clippy missing: skipped"; fi

## Alerting rules: promtool (Debian's prometheus package) checks them and runs their unit tests.
alerts:
	@./scripts/apt-install.sh promtool prometheus
	promtool check rules ops/prometheus/alerts.yml
	cd ops/prometheus && promtool test rules alerts_test.yml

typecheck: $(NATIVE)
	$(VENV)/bin/mypy

## Regenerate the reference (docs/reference.md, config.json's env, the README's budgets) from the code.
reference: $(NATIVE)
	$(PY) scripts/write-reference.py

## Regenerate logdriver/_proto from proto/entry.proto (tests fail if they drift).
proto: $(NATIVE)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=logdriver/_proto --pyi_out=logdriver/_proto proto/entry.proto

## Build the managed plugin (rootfs by debootstrap, no registry) and create + enable it;
## STATE_DIR=/path keeps its state there instead of in its propagated mount.
plugin: $(NATIVE) docker
	./scripts/build-plugin.sh logdriver $(STATE_DIR)

## Push the managed plugin to a registry: make plugin-push REGISTRY=host:port [TAG=version].
TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
plugin-push: $(NATIVE) docker
	@test -n "$(REGISTRY)" || { echo "usage: make plugin-push REGISTRY=host:port [TAG=...]" >&2; exit 2; }
	./scripts/build-plugin.sh --push $(REGISTRY) $(TAG)

## Throughput against Docker's own drivers (local, json-file, none; fluentd to a real server), median of 5;
## host CPU per line with 50 containers at ~100 lines/s each, against json-file.
## On the engine at DOCKER_HOST (default Debian's 20.10: the `docker` prerequisite starts that one), e.g.
## DOCKER_HOST=$$(./scripts/ensure-engine.sh 29) make bench for dockerd 29.8.
bench: $(PEER_TARGETS) docker
	@$(MAKE) --no-print-directory native CARGO_PROFILE=release
	./scripts/build-otelcol-agent.sh >/dev/null
	@echo "engine: dockerd $$(docker version --format '{{.Server.Version}}') at $${DOCKER_HOST:-unix:///var/run/docker.sock}"
	$(PY) bench/spool_bench.py
	$(PY) bench/bench.py
	$(PY) bench/events_bench.py
	$(PY) bench/policy_bench.py
	$(PY) bench/switch_bench.py
	$(PY) bench/many_bench.py --containers 50
	$(PY) bench/many_bench.py --containers 200
	$(PY) bench/many_sinks_bench.py --containers 50
	$(PY) bench/idle_bench.py --containers 300
	$(PY) bench/fluentd_bench.py
	$(PY) bench/es_bench.py
	$(PY) bench/kafka_bench.py
	$(PY) bench/otlp_bench.py
	$(PY) bench/loki_bench.py
	$(PY) bench/shared_fate_bench.py
	$(PY) bench/burst_bench.py
	$(PY) bench/agent_bench.py

clean:
	rm -rf $(VENV) build target .pytest_cache .mypy_cache .ruff_cache .hypothesis
