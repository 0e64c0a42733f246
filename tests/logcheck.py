"""``plugin_log()``: the plugin's own logging setup (``configure_logging``) for the span of a
test, its lines captured, pytest's logging put back afterwards."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from logdriver.server.logging_setup import CHATTY_LIBRARIES, configure_logging


@contextlib.contextmanager
def plugin_log(**environ: str) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in CHATTY_LIBRARIES}
    out = io.StringIO()
    try:
        configure_logging(environ, out)
        yield out
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in libraries.items():
            logging.getLogger(name).setLevel(old)
