"""The core owns each destination's client (issue 33): one per (sink, destination),
opened when the first container of that destination starts, closed when the last one's
lines are delivered (a stopped container's drain included), and never opened for a
container whose start fails. Sinks keep no registry of their own."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import trio

from logdriver import ConfigError, LogBatch, Settings
from logdriver.abc import DELIVERED, ContainerContext, SendResult, Sink, SinkStream
from logdriver.config import SinkConfig, option
from logdriver.config.options import check_log_opts
from logdriver.config.policy import parse_policy
from logdriver.delivery import deliveries
from logdriver.server.rpc import StartLogging, StopLogging
from logdriver.testing import encode_entry

from .test_driver import container, daemon_fifo, fake_driver, frames, wait_until


@dataclass(frozen=True, slots=True)
class AddressConfig(SinkConfig):
    address: str = option("counted-address", "here", "a name", "where lines go", destination=True)


class CountedClient:
    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.closed = False
        self.hold = False  # answer "retry" until the test lets go

    async def aclose(self) -> None:
        self.closed = True


class CountedSink(Sink):
    """A fake sink whose clients say when they are opened and closed."""

    name = "fake"
    config: ClassVar[type[SinkConfig]] = AddressConfig
    pipeline_defaults: ClassVar[Mapping[str, str]] = {"batch-max-wait": "0s", "retry-initial": "50ms"}

    def __init__(self) -> None:
        self.clients: list[CountedClient] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> CountedSink:
        return cls()

    def destination(self, context: ContainerContext) -> Hashable:
        return context.config(AddressConfig).address

    def open_client(self, destination: Hashable) -> CountedClient:
        if destination == "refused":
            raise ConfigError("counted-address", str(destination), "somewhere the client accepts")
        self.clients.append(CountedClient(str(destination)))
        return self.clients[-1]

    def open_stream(self, context: ContainerContext, client: CountedClient) -> SinkStream:
        return CountedStream(client)


class CountedStream(SinkStream):
    def __init__(self, client: CountedClient) -> None:
        self.client = client

    async def send_batch(self, batch: LogBatch) -> SendResult:
        assert not self.client.closed, "a batch sent on a closed client"
        return SendResult.retry_all(len(batch)) if self.client.hold else DELIVERED

    async def aclose(self) -> None:
        return None


def _open(clients: list[CountedClient]) -> dict[str, int]:
    opened: dict[str, int] = {}
    for client in clients:
        if not client.closed:
            opened[client.destination] = opened.get(client.destination, 0) + 1
    return opened


async def test_one_client_per_destination_closed_with_its_last_container(tmp_path: Path) -> None:
    sink = CountedSink()
    driver = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    fifos = {name: daemon_fifo(tmp_path, name) for name in ("a", "b", "c")}
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(fifos["a"][0], container("a", sinks="fake")))
        await driver.start_logging(StartLogging(fifos["b"][0], container("b", sinks="fake")))
        await driver.start_logging(
            StartLogging(fifos["c"][0], container("c", sinks="fake", **{"counted-address": "there"}))
        )
        assert _open(sink.clients) == {"here": 1, "there": 1}  # a and b share one
        sink.clients[0].hold = True  # "here" holds b's line back: b drains after it stops
        for name, (_, fd) in fifos.items():
            os.write(fd, frames(encode_entry("stdout", 1, name.encode())))
        await wait_until(lambda: driver.statistics().fifos.records == 3)
        for name in ("a", "b", "c"):
            path, fd = fifos[name]
            await driver.stop_logging(StopLogging(path))
            os.close(fd)
        await wait_until(lambda: _open(sink.clients) == {"here": 1})  # "there" closed with c
        await trio.sleep(0.3)
        assert _open(sink.clients) == {"here": 1}  # still draining a's and b's lines
        sink.clients[0].hold = False
        await wait_until(lambda: _open(sink.clients) == {})
        assert driver.statistics().sinks["fake"].totals.lines_out == 3
        # A container of a destination whose client closed gets a new one.
        path, fd = daemon_fifo(tmp_path, "d")
        await driver.start_logging(StartLogging(path, container("d", sinks="fake")))
        assert _open(sink.clients) == {"here": 1}
        assert len(sink.clients) == 3
        nursery.cancel_scope.cancel()
        os.close(fd)


async def test_a_client_that_refuses_fails_the_start_and_holds_nothing(tmp_path: Path) -> None:
    sink = CountedSink()
    driver = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        with pytest.raises(ConfigError, match="counted-address"):
            await driver.start_logging(
                StartLogging(path, container("a", sinks="fake", **{"counted-address": "refused"}))
            )
        assert driver.deliveries.clients.statistics().open == {}
        assert not driver.deliveries.live
        nursery.cancel_scope.cancel()
    os.close(fd)


def test_no_sink_keeps_a_client_registry() -> None:
    # Before issue 33 the Elasticsearch, Fluentd, Kafka and OTLP sinks each counted their
    # streams by hand (``users``) to know when to close a shared client.
    root = Path(__file__).parents[2] / "sinks"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert ".users" not in text, path
        assert "def release(" not in text, path


async def test_a_pipeline_that_cannot_be_built_gives_its_client_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = CountedSink()
    driver = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    path, fd = daemon_fifo(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in building a pipeline")

    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        monkeypatch.setattr(deliveries, "SinkPipeline", broken)
        with pytest.raises(RuntimeError):
            await driver.start_logging(StartLogging(path, container("a", sinks="fake")))
        await wait_until(lambda: _open(sink.clients) == {})  # closed off the call
        assert driver.deliveries.clients.statistics().open == {}
        nursery.cancel_scope.cancel()
    os.close(fd)


async def test_a_policy_that_moves_a_container_opens_the_new_client_and_closes_the_old(tmp_path: Path) -> None:
    sink = CountedSink()
    driver = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", sinks="fake")))
        os.write(fd, frames(encode_entry("stdout", 1, b"before")))
        await wait_until(lambda: driver.statistics().sinks["fake"].totals.lines_out == 1)
        rule = "rules: [{name: move, match: {name: a}, enforce: {counted-address: there}}]"
        await driver.apply_policy(parse_policy(rule.encode(), lambda options: check_log_opts(options, driver.sinks)))
        await wait_until(lambda: _open(sink.clients) == {"there": 1})  # "here" drained and closed
        os.write(fd, frames(encode_entry("stdout", 2, b"after")))
        await wait_until(lambda: driver.statistics().sinks["fake"].totals.lines_out == 2)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: _open(sink.clients) == {})
        nursery.cancel_scope.cancel()


async def test_a_rule_whose_client_cannot_open_is_refused_and_the_plugin_goes_on(tmp_path: Path) -> None:
    sink = CountedSink()
    driver = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    path, fd = daemon_fifo(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await driver.start_logging(StartLogging(path, container("a", sinks="fake")))
        # Valid as a log-opt; only opening the client refuses it (as a TLS file a rule names may be missing).
        policy = tmp_path / "policy.yaml"
        policy.write_text("rules: [{name: bad, match: {}, enforce: {counted-address: refused}}]")
        policy.chmod(0o600)
        await wait_until(lambda: driver.live_policy.rejected == 1)
        status = (tmp_path / "policy-status.json").read_text()
        assert "rule 'bad', option 'counted-address'" in status
        assert "for container a (aaaaaaaaaaaa)" in status
        assert _open(sink.clients) == {"here": 1}  # the plugin goes on, as it was
        os.write(fd, frames(encode_entry("stdout", 1, b"still here")))
        await wait_until(lambda: driver.statistics().sinks["fake"].totals.lines_out == 1)
        await driver.stop_logging(StopLogging(path))
        os.close(fd)
        await wait_until(lambda: _open(sink.clients) == {})
        nursery.cancel_scope.cancel()


async def test_a_container_the_policy_fails_for_at_resume_resumes_without_it(tmp_path: Path) -> None:
    path, fd = daemon_fifo(tmp_path)
    first = fake_driver(tmp_path, CountedSink())  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await first.start_logging(StartLogging(path, container("a", sinks="fake")))
        nursery.cancel_scope.cancel()  # the plugin stops; the container goes on
    policy = tmp_path / "policy.yaml"  # taken at the next start, before any container resumes
    policy.write_text("rules: [{name: bad, match: {}, enforce: {counted-address: refused}}]")
    policy.chmod(0o600)
    sink = CountedSink()
    restarted = fake_driver(tmp_path, sink)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted.run)
        assert restarted.live_policy.policy.rule_names() == ("bad",)
        resumed = list(restarted._fifos.values())
        assert len(resumed) == 1  # its logging goes on, without the policy
        assert resumed[0].context.rules == ()
        assert _open(sink.clients) == {"here": 1}
        nursery.cancel_scope.cancel()
    os.close(fd)
