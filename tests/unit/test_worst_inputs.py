"""Every input at its worst (issue 30): one container sets every option it may set to its
worst value and writes the worst lines it can, to a destination that answers the worst it
can (a fake, named a fake: bombs, huge replies, partial successes, 429s, drips), while a
bystander on the operator's destination is measured against a run without it
(tests/worst_probe.py, in a subprocess so that pytest's own memory does not count)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from logdriver.__main__ import sink_classes
from logdriver.config.options import parse_log_opts
from tests.worst_probe import options_to_set, worst_log_opts

ROOT = Path(__file__).resolve().parents[2]
SECONDS = "10"
FIXED_OVERHEAD = 128 << 20  # README, "Budgets"


def probe(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.worst_probe", SECONDS, *args],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=300,
        env=os.environ,
    )
    return dict(orjson.loads(done.stdout.splitlines()[-1]))


def test_the_worst_options_come_from_the_registry_and_are_accepted() -> None:
    """A new option joins by itself (a number: its largest), or the probe names it."""
    opts = worst_log_opts("http://127.0.0.1:9/")
    set_here = {option.name for option in options_to_set()}
    assert set_here - {
        "multiline",
        "keep-lines",
        "redact-pattern",
        "labels",
        "env",
        "otlp-tls-ca",
        "otlp-tls-cert",
        "otlp-tls-key",
    } <= set(opts)
    parse_log_opts(opts, {}, sink_classes(), {})  # what StartLogging checks: all accepted


@pytest.mark.alone
def test_a_bystander_keeps_its_lines_throughput_and_answers_beside_the_worst() -> None:
    alone = probe("baseline")
    beside = probe()
    assert beside["bystander_delivered"] == beside["bystander_written"], beside  # every line
    assert beside["bystander_written"] >= 0.9 * alone["bystander_written"], (alone, beside)
    assert beside["activate_worst"] <= 0.1, beside
    assert beside["rss_growth"] <= beside["budget"] + FIXED_OVERHEAD, beside
    assert beside["hostile_requests"] > 0, beside  # the worst destination was really reached
