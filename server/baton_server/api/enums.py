"""Proto enums <-> domain enums, by name: `STATE_ACTIVE` <-> `AgentState.ACTIVE`."""

from __future__ import annotations

import enum
from typing import Any, Protocol, TypeVar

from baton_server.errors import invalid_field

E = TypeVar("E", bound=enum.Enum)


class ProtoEnum(Protocol):
    """The generated wrapper of a proto enum (e.g. `Agent.State`)."""

    def Name(self, number: int) -> str: ...

    def Value(self, name: str) -> Any: ...

    def keys(self) -> list[str]: ...


def _prefix(proto: ProtoEnum) -> str:
    unspecified = proto.Name(0)
    return unspecified.removesuffix("UNSPECIFIED")


def enum_to_domain(number: int, proto: ProtoEnum, domain: type[E], field: str) -> E | None:
    """The domain member for a proto enum number; None for UNSPECIFIED. Unknown numbers
    (from a newer client) are INVALID_ARGUMENT naming `field`."""
    if number == 0:
        return None
    try:
        return domain(proto.Name(number).removeprefix(_prefix(proto)))
    except ValueError:
        names = ", ".join(k for k in proto.keys() if not k.endswith("UNSPECIFIED"))  # noqa: SIM118
        raise invalid_field(field, f"unknown value {number}; expected one of {names}") from None


def enum_to_proto(member: enum.Enum | None, proto: ProtoEnum) -> Any:
    """The proto enum number for a domain member; 0 for None."""
    if member is None:
        return 0
    return proto.Value(_prefix(proto) + str(member.value))
