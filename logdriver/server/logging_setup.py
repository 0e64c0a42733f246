"""The plugin's own log: stdout, text or JSON lines, quiet at the default level.

dockerd logs a plugin's stderr as errors, so everything goes to stdout. At ``info``
the log holds one line per event an operator acts on (a container's logging
ending, a destination failing and recovering, a budget refusing), each already
rate-limited where it is raised; the libraries logdriver uses log per request
(httpx and elastic_transport two INFO lines per bulk request), so below ``debug``
they are held to warnings.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO

import orjson

from logdriver.config.settings import plugin_setting

# Loggers of libraries that log at INFO per request or connection.
CHATTY_LIBRARIES = ("httpx", "httpcore", "elastic_transport", "urllib3")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message[, error]."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(environ: Mapping[str, str], stream: TextIO | None = None) -> logging.Handler:
    """Set up the root logger from ``LOGDRIVER_LOG_LEVEL`` (debug, info, warning, error;
    default info) and ``LOGDRIVER_LOG_FORMAT`` (text or json; default text), writing to
    ``stream`` (stdout)."""
    level = plugin_setting("log-level", environ)
    kind = plugin_setting("log-format", environ)
    handler = logging.StreamHandler(stream or sys.stdout)
    if kind == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    formatter.converter = _utc
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    return handler


def _utc(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)
