"""Passing a call on to the server process that runs an execution, when the process that got
it does not: the execution commands that act on a run in memory (pause, resume, approve,
signal). The caller's credentials go with the call, so that process checks them again; a
call is passed on once at most."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from baton_server.cluster.membership import Membership
from baton_server.errors import BatonError, Code

Context = grpc.aio.ServicerContext[Any, Any]
StubOf = Callable[[grpc.aio.Channel], Any]
"""A generated stub class (or a function making one from a channel)."""

FORWARDED = "baton-forwarded"
"""Metadata on a call passed on by another process: it is not passed on again."""


class OwnerForwarder:
    """Channels to the other replicas, by their advertised addresses. `allowed` is False
    with TLS on: a forwarded call would be plaintext, so callers are told where to go."""

    def __init__(self, membership: Membership, *, allowed: bool) -> None:
        self._membership = membership
        self._allowed = allowed
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        """Closes the channels calls went through."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def unary(
        self,
        stub_of: Callable[[grpc.aio.Channel], Any],
        method: str,
        request: Any,
        context: Context,
        owner: str,
    ) -> Any:
        """Makes the call `method` on replica `owner`; its answer, or its error as ours."""
        stub = stub_of(await self._channel(context, owner))
        try:
            return await getattr(stub, method)(
                request, metadata=_forwarded(context), timeout=context.time_remaining()
            )
        except grpc.aio.AioRpcError as exc:
            await _abort_like(context, exc)

    async def _channel(self, context: Context, owner: str) -> grpc.aio.Channel:
        address = await self._membership.address_of(owner)
        already = any(key == FORWARDED for key, _ in context.invocation_metadata() or ())
        if not address or owner == self._membership.id or already:
            raise BatonError(
                Code.UNAVAILABLE,
                "NO_ENGINE",
                "the server process that runs this execution cannot be reached right now; "
                "retry shortly",
            )
        if not self._allowed:
            raise BatonError(
                Code.UNAVAILABLE,
                "ENGINE_ELSEWHERE",
                f"another server process runs this execution: call {address}",
                metadata={"address": address},
            )
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address)
        return channel


def _forwarded(context: Context) -> list[tuple[str, str]]:
    """The caller's credentials, passed on with the call, and the mark that it was."""
    return [
        *(
            (k, v)
            for k, v in context.invocation_metadata() or ()
            if k == "authorization" and isinstance(v, str)
        ),
        (FORWARDED, "1"),
    ]


async def _abort_like(context: Context, error: grpc.aio.AioRpcError) -> None:
    """Ends the call with the other replica's status, details and error details."""
    await context.abort(
        error.code(), error.details() or "", trailing_metadata=error.trailing_metadata()
    )
