"""What a stopped container holds for a destination its log-opts chose is released
(issue 30, finding 9): 16 short-lived containers naming brokers that never answer kept
their pipelines draining, and their Kafka producers, for good; every later container
needing a producer, the operator's included, failed ``docker run``.

A stopped container's lines wait for the plugin-wide destination for good (the README's
promise), and for a destination of its own ``LOGDRIVER_STOPPED_DRAIN_MAX_TIME`` (10m)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import trio
import trio.testing

from logdriver.config import SinkConfig, option
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from .test_driver import FakeSinkKind, container, daemon_fifo, fake_driver, frames, wait_until


@dataclass(frozen=True, slots=True)
class AddressConfig(SinkConfig):
    address: str = option("fake-address", "operator", "a name", "where lines go", destination=True)


class FakeAddressedKind(FakeSinkKind):
    """FakeSinkKind with a destination option, as every network sink has."""

    config: ClassVar[type[SinkConfig]] = AddressConfig


async def test_a_stopped_containers_own_destination_is_given_up_the_operators_is_not(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    kind = FakeAddressedKind()
    driver = fake_driver(tmp_path, kind)
    own_path, own = daemon_fifo(tmp_path, "own")
    operator_path, operator = daemon_fifo(tmp_path, "operator")
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(own_path, container("a", sinks="fake", **{"fake-address": "mine"})))
        await driver.start_logging(StartLogging(operator_path, container("b", sinks="fake")))
        for stream in kind.streams:
            stream.fail_times = 10**9  # neither destination answers
        for fd in (own, operator):
            os.write(fd, frames(*(encode_entry("stdout", n, b"line %d" % n) for n in range(10))))
        await wait_until(lambda: driver.statistics().fifos.records == 20)
        for path, fd in ((own_path, own), (operator_path, operator)):
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        await wait_until(lambda: driver.statistics().active_fifos == 0)
        await trio.sleep(11 * 60)  # past stopped-drain-max-time, in virtual time
        live = driver.deliveries.live
        assert [p.container_id[:1] for p in live] == ["b"]  # the operator's still waits
        assert kind.streams[0].closed  # the container's own stream (and what it held) released
        assert driver.statistics().sinks["fake"].totals.dropped == 10  # counted
        kind.streams[1].fail_times = 0
        await wait_until(lambda: not driver.deliveries.live)
        assert len(kind.streams[1].delivered) == 10
        nursery.cancel_scope.cancel()
