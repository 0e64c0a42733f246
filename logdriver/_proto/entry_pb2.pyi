from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogEntry(_message.Message):
    __slots__ = ("source", "time_nano", "line", "partial", "partial_log_metadata", "attrs")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIME_NANO_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_LOG_METADATA_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    source: str
    time_nano: int
    line: bytes
    partial: bool
    partial_log_metadata: PartialLogEntryMetadata
    attrs: _containers.RepeatedCompositeFieldContainer[LogAttr]
    def __init__(self, source: _Optional[str] = ..., time_nano: _Optional[int] = ..., line: _Optional[bytes] = ..., partial: _Optional[bool] = ..., partial_log_metadata: _Optional[_Union[PartialLogEntryMetadata, _Mapping]] = ..., attrs: _Optional[_Iterable[_Union[LogAttr, _Mapping]]] = ...) -> None: ...

class PartialLogEntryMetadata(_message.Message):
    __slots__ = ("last", "id", "ordinal")
    LAST_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDINAL_FIELD_NUMBER: _ClassVar[int]
    last: bool
    id: str
    ordinal: int
    def __init__(self, last: _Optional[bool] = ..., id: _Optional[str] = ..., ordinal: _Optional[int] = ...) -> None: ...

class LogAttr(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
