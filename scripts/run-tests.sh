#!/bin/sh
# `make test`'s pytest: two processes side by side, one per engine CI runs, each with about
# half of the engine-free tests (balanced by the durations each side prints). Most of an integration test's time is spent waiting on dockerd, a
# container or a peer, so two of them share the two cores well. Each side has its own
# plugin names, ports and peers; the second side's output is printed after the first's.
set -u
PY=${PY:-.venv/bin/python}
other_log=$(mktemp)
# Each side its own pytest temporary root: two runs cleaning one /tmp/pytest-of-root race.
temp=$(mktemp -d /tmp/logdriver-tests-XXXXXX)
trap 'rm -f "$other_log"; rm -rf "$temp"' EXIT
# Tests that compare time or throughput with a baseline run first, with nothing beside them:
# the other side's engines and peers on two cores once cost one of them its margin.
"$PY" -m pytest -q -p no:cacheprovider --basetemp="$temp/alone" -m alone tests/unit || exit 1
LOGDRIVER_TEST_ENGINES=docker-29.8 "$PY" -m pytest -q -p no:cacheprovider --durations=15 --basetemp="$temp/b" \
  -m "not alone" tests/integration tests/sinks --ignore=tests/sinks/test_conformance.py >"$other_log" 2>&1 &
other=$!
LOGDRIVER_TEST_ENGINES=docker-20.10 "$PY" -m pytest -q --durations=15 --basetemp="$temp/a" -m "not alone" \
  tests/integration tests/unit tests/packaging tests/sinks/test_conformance.py
first=$?
wait "$other"
second=$?
echo "==== the docker-29.8 side (integration on dockerd 29.8, tests/sinks but the conformance suite) ===="
cat "$other_log"
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
