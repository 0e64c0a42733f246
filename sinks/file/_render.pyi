# Type stub for the Rust extension built from sinks/file/native/ (LogBatch.columns() in, bytes out).
from logdriver import LogBatch

def json_lines(columns: tuple[LogBatch, bytes, bytes], suffix: bytes) -> bytes:
    """JSON lines: ``{"time","stream","message"[,"partial"]`` then ``suffix`` (``,...}\\n``)."""

def text_lines(columns: tuple[LogBatch, bytes, bytes]) -> bytes:
    """Each line followed by a newline."""
