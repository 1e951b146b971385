"""Servicers for RPCs that later releases implement: each answers UNIMPLEMENTED with a plain
message and ErrorInfo reason NOT_IMPLEMENTED, streaming ones included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from baton_server.api.status import translate_errors
from baton_server.errors import BatonError, Code


def _error(method: MethodDescriptor) -> BatonError:
    return BatonError(
        Code.UNIMPLEMENTED,
        "NOT_IMPLEMENTED",
        f"{method.full_name} is not implemented yet in this version of Baton",
        metadata={"method": method.full_name},
    )


def _handler(method: MethodDescriptor) -> Callable[..., Any]:
    if method.server_streaming:

        async def stream(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            raise _error(method)
            yield  # makes this an async generator, like the real streaming handler

        return stream

    async def unary(self: Any, request: Any, context: Any) -> Any:
        raise _error(method)

    return unary


def unimplemented(base: type, service: ServiceDescriptor, keep: Collection[str] = ()) -> type:
    """A subclass of the generated servicer `base` in which every method of `service` not
    named in `keep` answers UNIMPLEMENTED."""
    namespace = {m.name: _handler(m) for m in service.methods if m.name not in keep}
    return translate_errors(type(f"Unimplemented{service.name}", (base,), namespace))
