"""logdriver: a Docker logging-driver plugin on trio.

The public surface, for sinks and tests: lines and batches, container facts,
settings and errors. Sinks implement ``logdriver.abc.Sink``; ``logdriver.testing``
runs one as the plugin does and checks it against the shared contract.

Glossary (one word per thing):

- *entry*: one ``LogEntry`` frame as dockerd writes it to the FIFO; a line longer
  than 16 KiB arrives as several entries.
- *line*: what the container wrote, its entries rejoined; the unit sinks deliver
  and every counter counts (``LogRecord`` is one line as a Python object,
  ``LogBatch`` many, in Rust). Option names inherited from Docker say "entries"
  where they mean lines (``buffer-max-entries``).
- *sink*: a kind of destination (``file``, ``fluentd``...), one object per plugin;
  *stream*: one container's connection to a sink.
- *pipeline*: one container's queue, batching and retries in front of one stream;
  it outlives its FIFO until its lines are delivered.
- *spool*: a pipeline's queue on disk (``buffer=disk``); *store*: the ``docker logs``
  copy of every container's entries; *dead letters*: lines a sink refused for good.
- *verdict*: a stream's answer for each line of a batch (``SendResult``): delivered,
  retry, or rejected with a reason.
"""

from ._entries import encode_entry
from ._exceptions import ConfigError, LogDriverError
from ._framing import encode_frame
from ._native import LogBatch
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
    "SinkOption",
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
