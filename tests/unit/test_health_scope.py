"""/health reflects the plugin and the operator's destinations (issue 30, finding 12): one
container naming a dead ``otlp-endpoint`` made the plugin answer 503, and a liveness probe
would then restart it for everyone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import trio

from logdriver.config.settings import Settings
from logdriver.reading.registry import FifoRegistry
from logdriver.server.driver import Driver
from logdriver.server.metrics import health
from logdriver.server.rpc import StartLogging
from logdriver.store.log_store import LogStore
from logdriver.testing import encode_entry
from logdriver_sinks.otlp import OtlpSink

from ..fakes import FakeHttpEndpoint
from .test_driver import container, daemon_fifo, frames

OK = (200, {"content-type": "application/x-protobuf"}, b"", 0.0)


async def test_a_containers_dead_endpoint_shows_in_the_body_not_as_503(tmp_path: Path) -> None:
    operator = FakeHttpEndpoint([OK])
    environ = {
        "LOGDRIVER_STATE_DIR": str(tmp_path),
        "LOGDRIVER_GC_INTERVAL": "0s",
        "LOGDRIVER_SINKS": "otlp",
        "LOGDRIVER_OTLP_ENDPOINT": operator.url,
        "LOGDRIVER_RETRY_INITIAL": "100ms",
        "LOGDRIVER_RETRY_MAX_DELAY": "200ms",
    }
    settings = Settings.from_env(environ)
    sink = OtlpSink.from_settings(settings)
    store = LogStore(str(tmp_path / "store"), settings.store_max_bytes)
    driver = Driver(settings, {"otlp": sink}, store, FifoRegistry(str(tmp_path / "fifos.json")))
    dead_path, dead = daemon_fifo(tmp_path, "dead")
    fine_path, fine = daemon_fifo(tmp_path, "fine")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            await driver.start_logging(
                StartLogging(dead_path, container("a", **{"otlp-endpoint": "http://127.0.0.1:9"}))
            )
            await driver.start_logging(StartLogging(fine_path, container("b")))
            os.write(dead, frames(encode_entry("stdout", 1, b"to nowhere")))
            os.write(fine, frames(encode_entry("stdout", 1, b"to the operator")))
            deadline = time.monotonic() + 10
            while driver.statistics().sinks["otlp"].failing_for < 1.5:
                assert time.monotonic() < deadline
                await trio.sleep(0.1)
            status, body = health(driver, failing_after=1)
            assert status == 200
            answer = orjson.loads(body)
            assert answer["status"] == "ok"
            assert "otlp" in answer["failing_container_destinations_seconds"]
            assert len(operator.bodies) == 1  # the operator's destination got its line
            nursery.cancel_scope.cancel()
    finally:
        os.close(dead)
        os.close(fine)
        operator.close()
        store.close()
