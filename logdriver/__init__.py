"""logdriver: a Docker logging-driver plugin on trio.

The public face, for sinks and tests, is these modules:

- ``logdriver`` (this one): lines and batches, container facts, settings and errors, and
  ``read_regular``, the one way to read a file a container names (never blocking);
- ``logdriver.abc``: the sink interface (``Sink``, ``SinkStream``, ``SendResult``) and
  the context a stream gets; ``logdriver.config``: what a sink declares its options with;
- ``logdriver.replies``: a destination's HTTP replies read within a bound (for sinks
  that speak HTTP);
- ``logdriver.testing``: runs a sink as the plugin does, checks it against the shared
  contract (``SinkConformance``), and writes ``LogEntry`` frames as dockerd does.

Everything else (``reading``, ``store``, ``delivery``, ``server``) is the plugin's own.

Glossary (one word per thing):

- *entry*: one ``LogEntry`` frame as dockerd writes it to the FIFO; a line longer
  than 16 KiB arrives as several entries.
- *line*: what the container wrote, its entries rejoined; the unit sinks deliver
  and every counter counts (``LogRecord`` is one line as a Python object,
  ``LogBatch`` many, in Rust). Option names inherited from Docker say "entries"
  where they mean lines (``buffer-max-entries``).
- *sink*: a kind of destination (``file``, ``fluentd``...), one object per plugin;
  *stream*: one container's connection to a sink.
- *destination*: where a stream's lines go (address, credentials, target); streams
  with equal destinations share one *sender*, which batches their lines into shared requests.
- *pipeline*: one container's queue, batching and retries in front of one stream;
  it outlives its FIFO until its lines are delivered.
- *spool*: a pipeline's queue on disk (``buffer=disk``); *store*: the ``docker logs``
  copy of every container's entries; *dead letters*: lines a sink refused for good.
- *marker*: a record the plugin puts into a container's stream (a rate limit's count
  of the lines it dropped); its source is ``MARKER_SOURCE``, never stdout or stderr.
- *verdict*: a stream's answer for each line of a batch (``SendResult``): delivered,
  retry, or rejected with a reason.
"""

from logdriver._exceptions import ConfigError, LogDriverError
from logdriver._files import read_regular
from logdriver._native import LogBatch
from logdriver._records import ContainerInfo, LogRecord, PartialInfo, batch_of, records_of
from logdriver.config.options import ContainerOptions
from logdriver.config.processing import MARKER_SOURCE
from logdriver.config.settings import Settings

__all__ = [
    "ConfigError",
    "LogDriverError",
    "LogBatch",
    "LogRecord",
    "PartialInfo",
    "ContainerInfo",
    "ContainerOptions",
    "MARKER_SOURCE",
    "Settings",
    "batch_of",
    "read_regular",
    "records_of",
]

__version__ = "0.1.0"
