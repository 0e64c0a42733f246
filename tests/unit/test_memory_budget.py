"""The memory budget measures memory: the process's RSS stays within it plus the fixed
overhead the README states, with every queue full in front of a dead destination.

Each case runs tests/memory_probe.py in a subprocess (the real Driver, FIFOs, the real
Fluentd sink pointed where nothing listens) and reads its peak RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from logdriver.delivery.budget import BATCH_OVERHEAD, ENTRY_OVERHEAD, memory_cost

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
FIXED_OVERHEAD = 128 * MiB  # README, "Budgets": FIFO read buffers, decoding, the allocator
# Handing out part of a queued batch splits it in two: one batch's overhead more, charged
# after the fact. Lines are never queued past the budget.
SPLIT_SLACK = 64 << 10


def probe(*args: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.memory_probe", *args],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=300,
        env={**os.environ, "SINKS": "fluentd"},
    )
    return dict(orjson.loads(done.stdout))


def test_rss_stays_within_the_budget_with_40_containers_to_a_dead_destination() -> None:
    # Audit finding: the budget held at 256 MiB while RSS went 46 -> 604 MiB (about 610
    # bytes per queued line against 280 counted).
    result = probe("40", "20")  # 40 containers x 20 MB, 4,000,000 lines
    assert result["budget_peak"] <= result["budget"] + SPLIT_SLACK
    assert result["dropped"] > 0  # the budget really was full
    assert result["rss_growth"] <= result["budget"] + FIXED_OVERHEAD, result


def test_open_partial_lines_are_charged_with_refusal() -> None:
    # Audit finding: open partial lines were charged without refusal, up to partial-max-size
    # per stream: three containers put the budget at 367 MB of 268 MB.
    result = probe("3", "60", "partial")  # three 60 MB lines in 16 KiB pieces, 64m allowed
    assert result["budget_peak"] <= result["budget"] + SPLIT_SLACK, result
    assert result["cut_by_budget"] > 0  # sent as pieces, counted
    # README: a line of partial-max-size being rejoined or cut may cost up to three times
    # its size for a moment (its buffer, the batch it goes out in, the allocator's slack).
    assert result["rss_growth"] <= result["budget"] + FIXED_OVERHEAD + 3 * 64 * MiB, result


def test_a_queued_line_is_charged_at_least_what_it_costs() -> None:
    # RSS per queued 200-byte line, measured by batch size (1, 5, 20, 100, 1,000 lines a
    # batch): 487, 390, 355, 321, 302 bytes. The charge may be under by 5 % at most.
    for lines, measured in ((1, 487), (5, 390), (20, 355), (100, 321), (1000, 302)):
        charged = memory_cost(lines, 201 * lines) / lines
        assert charged >= 0.95 * measured, (lines, charged)
    assert (ENTRY_OVERHEAD, BATCH_OVERHEAD) == (120, 450)
