"""Conversions shared by the servicers: Struct <-> dict, Timestamp/Duration <-> seconds,
resource names <-> ids."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from baton.v1 import common_pb2
from baton_server.domain.executions import Usage
from baton_server.domain.ids import is_resource_id
from baton_server.errors import invalid_field
from baton_server.limits import (
    MAX_DURATION_SECONDS,
    MAX_PAYLOAD_DEPTH,
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    shorten,
)

_NANOS = 1_000_000_000
_MAX_SAFE_INT = 2**53


def struct_to_dict(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """A Struct as a plain dict; whole numbers come back as int, not float. Raises
    INVALID_ARGUMENT naming the place inside `field` for NaN or infinite numbers and for
    nesting deeper than MAX_PAYLOAD_DEPTH."""
    try:
        return _object(message, 1)
    except _BadValueError as bad:
        # The path is built only now, on the way out: valid payloads pay nothing for it.
        path = field + "".join(reversed(bad.where))
        raise invalid_field(path, bad.description, bad.reason) from None


def optional_struct(holder: Any, field: str, path: str) -> dict[str, Any] | None:
    """The dict in a Struct field, or None when the field is unset."""
    return struct_to_dict(getattr(holder, field), path) if holder.HasField(field) else None


class _BadValueError(Exception):
    """A value a payload may not hold; `where` collects the path inside out."""

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason
        self.where: list[str] = []


def _too_deep() -> _BadValueError:
    return _BadValueError(f"nests objects and lists more than {MAX_PAYLOAD_DEPTH} deep", "TOO_DEEP")


def _object(message: struct_pb2.Struct, depth: int) -> dict[str, Any]:
    if depth > MAX_PAYLOAD_DEPTH:
        raise _too_deep()
    result = {}
    for key, value in message.fields.items():
        try:
            result[key] = _value(value, depth)
        except _BadValueError as bad:
            bad.where.append(f".{shorten(key, 40)}")
            raise
    return result


def _value(value: struct_pb2.Value, depth: int) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise _BadValueError(
                "must be a finite number (JSON has no NaN or Infinity)", "NOT_FINITE"
            )
        return int(number) if number.is_integer() and abs(number) < _MAX_SAFE_INT else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _object(value.struct_value, depth + 1)
    if kind == "list_value":
        if depth + 1 > MAX_PAYLOAD_DEPTH:
            raise _too_deep()
        items = []
        for i, item in enumerate(value.list_value.values):
            try:
                items.append(_value(item, depth + 1))
            except _BadValueError as bad:
                bad.where.append(f"[{i}]")
                raise
        return items
    return None  # null_value, or no value at all


def dict_to_struct(value: dict[str, Any] | None) -> struct_pb2.Struct:
    """A dict as a Struct (None gives an empty Struct)."""
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """Epoch seconds as a Timestamp (unset for 0)."""
    message = timestamp_pb2.Timestamp()
    if seconds:
        message.FromNanoseconds(round(seconds * 1e9))
    return message


def time_of(holder: Any, field: str, path: str | None = None) -> float | None:
    """A Timestamp field in epoch seconds, or None when unset. Raises INVALID_ARGUMENT for
    a time outside 0001-01-01..9999-12-31 or nanos outside 0..999,999,999."""
    if not holder.HasField(field):
        return None
    value: timestamp_pb2.Timestamp = getattr(holder, field)
    if not (
        MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS
        and 0 <= value.nanos < _NANOS
    ):
        raise invalid_field(
            path or field,
            "must be a time between 0001-01-01 and 9999-12-31 with nanos in [0, 999999999]",
            "INVALID_TIME",
        )
    return value.seconds + value.nanos / 1e9


def seconds_of(holder: Any, field: str, path: str | None = None) -> float | None:
    """A Duration field in seconds, or None when unset. Raises INVALID_ARGUMENT outside
    google.protobuf.Duration's range (±315,576,000,000 s, nanos of the same sign)."""
    if not holder.HasField(field):
        return None
    value: duration_pb2.Duration = getattr(holder, field)
    seconds, nanos = value.seconds, value.nanos
    if not (
        -MAX_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS
        and -_NANOS < nanos < _NANOS
        and (seconds == 0 or nanos == 0 or (seconds > 0) == (nanos > 0))
    ):
        raise invalid_field(
            path or field,
            f"must be a duration within ±{MAX_DURATION_SECONDS} s, with nanos of the same sign",
            "INVALID_DURATION",
        )
    return seconds + nanos / 1e9


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
            field, f"{shorten(name)!r} is not a valid name (`{collection}/<id>`)", "INVALID_NAME"
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


def usage_to_proto(usage: Usage) -> common_pb2.TokenUsage:
    """Token counts as a TokenUsage message."""
    return common_pb2.TokenUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )
