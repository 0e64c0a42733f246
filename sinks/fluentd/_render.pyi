# Type stub for the Rust extension built from sinks/fluentd/native/ (LogBatch.columns() in, bytes out).
from logdriver import LogBatch

def forward_entries(
    columns: tuple[LogBatch, bytes, bytes],
    head: bytes,
    head_pairs: int,
    tail: bytes,
    tail_pairs: int,
    sub_second: bool,
    overridden: int,
) -> bytes:
    """Concatenated msgpack ``[time, record]`` entries (the PackedForward payload)."""
