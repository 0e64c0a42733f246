"""The plugin's own log: levels and format from the environment, JSON lines, chatty libraries held down."""

from __future__ import annotations

import io
import json
import logging

import pytest

from logdriver import ConfigError
from logdriver.server.logging_setup import configure_logging

from ..logcheck import plugin_log


def test_json_lines() -> None:
    with plugin_log(LOGDRIVER_LOG_FORMAT="json") as out:
        emit_two()
    first, second = (json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{"))
    assert first["level"] == "warning"
    assert first["logger"] == "logdriver.sinks.kafka"
    assert first["message"] == "broker k1:9092 down"
    assert first["time"].endswith("Z")
    assert "ValueError: boom" in second["error"]


def emit_two() -> None:
    logging.getLogger("logdriver.sinks.kafka").warning("broker %s down", "k1:9092")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("logdriver").exception("failed")


def test_libraries_that_log_per_request_are_held_to_warnings_below_debug() -> None:
    with plugin_log(LOGDRIVER_LOG_LEVEL="INFO") as out:
        logging.getLogger("httpx").info('HTTP Request: POST http://node/_bulk "HTTP/1.1 200 OK"')
        logging.getLogger("elastic_transport.transport").info("POST http://node/_bulk [status:200 duration:0.01s]")
        logging.getLogger("logdriver").info("an event")
    assert out.getvalue().count("\n") == 1
    with plugin_log(LOGDRIVER_LOG_LEVEL="debug") as out:
        logging.getLogger("httpx").debug("now shown")
    assert "now shown" in out.getvalue()


@pytest.mark.parametrize(("name", "value"), [("LOGDRIVER_LOG_LEVEL", "loud"), ("LOGDRIVER_LOG_FORMAT", "xml")])
def test_bad_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        configure_logging({name: value}, io.StringIO())
