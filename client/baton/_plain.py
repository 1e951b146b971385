"""Payloads as plain Python values: a `google.protobuf.Struct` becomes a dict of dicts,
lists, strings, booleans, None and numbers, with integral numbers as int (JSON and Struct
have one number type; `4` should come back as `4`, not `4.0`)."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2


def plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return plain(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None
