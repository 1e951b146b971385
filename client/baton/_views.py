"""Executions and their events as the client hands them out: read-only views of the
messages whose payloads (every `google.protobuf.Struct`: inputs, outputs, event data) read
as plain Python values, with integral numbers as int. Everything else reads as in the
message (`view.state`, `view.steps[0].attempts`, `view.HasField("output")`), and
`view.proto` is the message itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from baton._plain import plain

M = TypeVar("M", bound=Message)


class MessageView(Generic[M]):
    """A read-only view of a message with plain payloads."""

    __slots__ = ("proto",)

    proto: M
    """The message itself (named so that no field of Baton's messages hides it)."""

    def __init__(self, message: M) -> None:
        object.__setattr__(self, "proto", message)

    def __getattr__(self, name: str) -> Any:
        return _viewed(getattr(self.proto, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self.proto).__name__} views are read-only")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageView):
            return bool(self.proto == other.proto)
        return bool(self.proto == other)

    def __hash__(self) -> int:
        return hash(self.proto.SerializeToString(deterministic=True))

    def __repr__(self) -> str:
        fields = json_format.MessageToDict(self.proto, preserving_proto_field_name=True)
        return f"{type(self.proto).__name__}({fields})"


def _viewed(value: Any) -> Any:
    if isinstance(value, struct_pb2.Struct):
        return plain(value)
    if isinstance(value, Message):
        if value.DESCRIPTOR.full_name.startswith("google.protobuf."):
            return value  # Timestamp, Duration: their own methods are the way to read them
        return MessageView[Message](value)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, Mapping)):
        return value
    if isinstance(value, Mapping):
        return {key: _viewed(item) for key, item in value.items()}
    return [_viewed(item) for item in value]  # repeated fields
