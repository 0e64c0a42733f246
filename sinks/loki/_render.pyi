from logdriver import LogBatch

def proto_stream(
    columns: tuple[LogBatch, bytes, bytes], labels: str, metadata: list[tuple[str, str]], message_line: bool
) -> bytes:
    """The batch as a framed StreamAdapter (field 1 of a PushRequest); ``message_line``: a
    parsed line's message is the entry's line."""

def json_stream(
    columns: tuple[LogBatch, bytes, bytes], labels: bytes, metadata: list[tuple[str, str]], message_line: bool
) -> bytes:
    """The batch as one member of a JSON push's streams array."""

def snappy(body: bytes) -> bytes:
    """The body in snappy's block format."""
