"""logdriver: a Docker logging-driver plugin on trio.

The public surface, for sinks and tests: records, container facts, settings
and errors. Sinks implement ``logdriver.abc.Sink``.
"""

from ._entries import encode_entry as encode_entry
from ._exceptions import ConfigError as ConfigError
from ._exceptions import LogDriverError as LogDriverError
from ._exceptions import SinkError as SinkError
from ._exceptions import SinkRejected as SinkRejected
from ._exceptions import SinkUnavailable as SinkUnavailable
from ._framing import encode_frame as encode_frame
from ._options import ContainerOptions as ContainerOptions
from ._options import Settings as Settings
from ._records import ContainerInfo as ContainerInfo
from ._records import LogRecord as LogRecord
from ._records import PartialInfo as PartialInfo

__version__ = "0.1.0"
