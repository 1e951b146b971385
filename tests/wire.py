"""Protobuf wire format written by hand, for requests the protobuf library refuses to build
(a Struct nested deeper than its recursion limit)."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """`value` as a base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_bytes(number: int, body: bytes) -> bytes:
    """A length-delimited field `number` holding `body`."""
    return varint((number << 3) | 2) + varint(len(body)) + body


def nested_struct_bytes(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` deep: {"a": {"a": ...}}."""
    body = b""
    for _ in range(depth):
        value = field_bytes(5, body)  # Value.struct_value
        entry = field_bytes(1, b"a") + field_bytes(2, value)  # the map entry's key and value
        body = field_bytes(1, entry)  # Struct.fields
    return body
