"""Conversions shared by the servicers: Struct <-> dict, Timestamp/Duration <-> seconds,
resource names <-> ids."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from baton_server.engine.ids import is_resource_id
from baton_server.errors import invalid_field


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict. Whole numbers come back as int, not float."""
    result: dict[str, Any] = _ints(json_format.MessageToDict(message))
    return result


def optional_struct(holder: Any, field: str) -> dict[str, Any] | None:
    """The dict in a Struct field, or None when the field is unset."""
    return struct_to_dict(getattr(holder, field)) if holder.HasField(field) else None


def dict_to_struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A dict as a Struct (None gives an empty Struct)."""
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """Epoch seconds as a Timestamp (unset for 0)."""
    message = timestamp_pb2.Timestamp()
    if seconds:
        message.FromNanoseconds(round(seconds * 1e9))
    return message


def seconds_of(holder: Any, field: str) -> float | None:
    """A Duration field in seconds, or None when unset."""
    if not holder.HasField(field):
        return None
    value: duration_pb2.Duration = getattr(holder, field)
    return float(value.ToNanoseconds()) / 1e9


def duration(seconds: float | None) -> duration_pb2.Duration | None:
    """Seconds as a Duration; None stays None."""
    if seconds is None:
        return None
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(seconds * 1e9))
    return message


def parse_name(name: str, collection: str, field: str) -> str:
    """The id in a resource name `collection/id`; raises INVALID_ARGUMENT naming `field`."""
    prefix = f"{collection}/"
    if not name:
        raise invalid_field(field, f"is required (`{collection}/<id>`)", "FIELD_REQUIRED")
    if not name.startswith(prefix) or not is_resource_id(name[len(prefix) :]):
        raise invalid_field(
            field, f"{name!r} is not a valid name (`{collection}/<id>`)", "INVALID_NAME"
        )
    return name[len(prefix) :]


def agent_ref(value: str) -> str:
    """An agent reference, `agents/x` or a bare `x`, as the id `x` (checked by validation)."""
    return value.removeprefix("agents/")


def check_new_id(value: str, field: str) -> str:
    """A client-chosen id for Create, validated; '' means the server picks one."""
    if value and not is_resource_id(value):
        raise invalid_field(
            field,
            "must be 1-63 characters of [a-z0-9-], start with a letter and not end with '-'",
            "INVALID_ID",
        )
    return value
