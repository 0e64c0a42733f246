"""A burst with default pipeline options, for each sink's engine test: every line delivered,
none dropped (the memory queue spills onto disk when full: ``buffer=hybrid``)."""

from __future__ import annotations

import re
import time

from .conftest import Plugin

# Three times the default memory queue (buffer-max-entries=100000): what used to be dropped.
BURST = 300_000
EXPECTED = [str(n) for n in range(1, BURST + 1)]


def burst(plugin: Plugin, opts: dict[str, str], timeout: float = 300) -> str:
    """``seq 1 BURST`` through ``opts['sinks']`` with no pipeline option given; returns the
    container once its pipeline finished with every line delivered and none dropped."""
    sink = opts["sinks"]
    container = plugin.run("seq", "1", str(BURST), opts=opts)
    pattern = (
        rf"sink {re.escape(sink)} for {container[:12]} finished: (\d+) in, (\d+) delivered, (\d+) dropped, "
        r"(\d+) dead-lettered, (\d+) spilled"
    )
    deadline = time.monotonic() + timeout
    while (match := re.search(pattern, plugin.log())) is None:
        assert time.monotonic() < deadline, plugin.log()[-3000:]
        time.sleep(0.2)
    lines_in, delivered, dropped, dead, spilled = (int(n) for n in match.groups())
    assert (lines_in, delivered, dropped, dead) == (BURST, BURST, 0, 0), match.group(0)
    print(f"{sink}: {spilled} of {BURST} lines spilled onto disk")  # how hard the queue was pushed
    return container
