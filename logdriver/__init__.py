"""logdriver: a Docker logging-driver plugin on trio.

The public surface, for sinks and tests: records and batches, container facts,
settings and errors. Sinks implement ``logdriver.abc.Sink``.
"""

from ._entries import encode_entry
from ._exceptions import ConfigError, LogDriverError, SinkError, SinkRejected, SinkUnavailable
from ._framing import encode_frame
from ._native import Batch as LogBatch
from ._options import ContainerOptions, Settings, SinkOption
from ._records import ContainerInfo, LogRecord, PartialInfo, batch_of, records_of
from ._templates import Template, render_tag
from ._tls import client_tls_context
from ._units import choice, int_between, non_negative_int, parse_bool, parse_duration, parse_size, size_between

__all__ = [
    "ConfigError",
    "ContainerInfo",
    "ContainerOptions",
    "LogBatch",
    "LogDriverError",
    "LogRecord",
    "PartialInfo",
    "Settings",
    "SinkError",
    "SinkOption",
    "SinkRejected",
    "SinkUnavailable",
    "Template",
    "batch_of",
    "choice",
    "client_tls_context",
    "encode_entry",
    "encode_frame",
    "int_between",
    "non_negative_int",
    "parse_bool",
    "parse_duration",
    "parse_size",
    "records_of",
    "size_between",
    "render_tag",
]

__version__ = "0.1.0"
