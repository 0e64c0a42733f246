from logdriver import LogBatch

def resource_logs(columns: tuple[LogBatch, bytes, bytes], resource: bytes, scope: bytes) -> bytes:
    """One ResourceLogs message body for the batch."""

def encode_resource(attributes: list[tuple[str, str]]) -> bytes:
    """A Resource message of string attributes."""

def export_request(parts: list[bytes]) -> bytes:
    """An ExportLogsServiceRequest of ResourceLogs bodies."""
