import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Handoff(_message.Message):
    __slots__ = ("name", "source_agent", "target_agent", "type", "data_mapping", "trigger_conditions", "priority", "description", "create_time", "update_time", "etag")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Handoff.Type]
        TYPE_SEQUENTIAL: _ClassVar[Handoff.Type]
        TYPE_ON_FAILURE: _ClassVar[Handoff.Type]
    TYPE_UNSPECIFIED: Handoff.Type
    TYPE_SEQUENTIAL: Handoff.Type
    TYPE_ON_FAILURE: Handoff.Type
    class DataMappingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_MAPPING_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    source_agent: str
    target_agent: str
    type: Handoff.Type
    data_mapping: _containers.ScalarMap[str, str]
    trigger_conditions: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    description: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    def __init__(self, name: _Optional[str] = ..., source_agent: _Optional[str] = ..., target_agent: _Optional[str] = ..., type: _Optional[_Union[Handoff.Type, str]] = ..., data_mapping: _Optional[_Mapping[str, str]] = ..., trigger_conditions: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ...) -> None: ...

class CreateHandoffRequest(_message.Message):
    __slots__ = ("handoff", "handoff_id", "request_id")
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    handoff: Handoff
    handoff_id: str
    request_id: str
    def __init__(self, handoff: _Optional[_Union[Handoff, _Mapping]] = ..., handoff_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetHandoffRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListHandoffsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "source_agent", "target_agent", "type")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    source_agent: str
    target_agent: str
    type: Handoff.Type
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., source_agent: _Optional[str] = ..., target_agent: _Optional[str] = ..., type: _Optional[_Union[Handoff.Type, str]] = ...) -> None: ...

class ListHandoffsResponse(_message.Message):
    __slots__ = ("handoffs", "next_page_token")
    HANDOFFS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    handoffs: _containers.RepeatedCompositeFieldContainer[Handoff]
    next_page_token: str
    def __init__(self, handoffs: _Optional[_Iterable[_Union[Handoff, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateHandoffRequest(_message.Message):
    __slots__ = ("handoff", "update_mask", "request_id")
    HANDOFF_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    handoff: Handoff
    update_mask: _field_mask_pb2.FieldMask
    request_id: str
    def __init__(self, handoff: _Optional[_Union[Handoff, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteHandoffRequest(_message.Message):
    __slots__ = ("name", "etag", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    request_id: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
