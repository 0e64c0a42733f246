# Type stub for the Rust extension built from sinks/elasticsearch/native/ (LogBatch.columns() in, bytes out).
from collections.abc import Callable

from logdriver import LogBatch

def bulk_lines(
    columns: tuple[LogBatch, bytes, bytes],
    container_id: bytes,
    action_prefix: Callable[[int], bytes],
    doc_suffix: bytes,
) -> bytes:
    """A bulk body: an action (``action_prefix(day)`` + id) and a document per line."""
