# Type stub for the Rust extension built from sinks/kafka/native/ (LogBatch.columns() in, messages out).
from logdriver import LogBatch

def messages(columns: tuple[LogBatch, bytes, bytes], suffix: bytes, raw: bool) -> list[tuple[bytes, int, int]]:
    """``(value, timestamp_ms, stderr)`` per line: the JSON record closed by ``suffix``, or the raw line."""
