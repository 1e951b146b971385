"""Passing a call on to the server process that runs executions (the engine lease holder),
when the process that got it cannot serve it: the execution commands that act on a run in
memory (pause, resume, retry, approve, signal). The caller's credentials go with the call,
so the engine process checks them again; a call is passed on once at most."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from baton_server.cluster.lease import EngineLease
from baton_server.errors import BatonError, Code

Context = grpc.aio.ServicerContext[Any, Any]
StubOf = Callable[[grpc.aio.Channel], Any]
"""A generated stub class (or a function making one from a channel)."""

FORWARDED = "baton-forwarded"
"""Metadata on a call passed on by another process: it is not passed on again."""


class EngineForwarder:
    """Channels to the engine process, by its advertised address. `allowed` is False with
    TLS on: a forwarded call would be plaintext, so callers are told where to go instead."""

    def __init__(self, lease: EngineLease | None, *, allowed: bool) -> None:
        self._lease = lease
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
    ) -> Any:
        """Makes the call `method` on the engine process; its answer, or its error as ours."""
        stub = stub_of(await self._channel(context))
        try:
            return await getattr(stub, method)(
                request, metadata=_forwarded(context), timeout=context.time_remaining()
            )
        except grpc.aio.AioRpcError as exc:
            await _abort_like(context, exc)

    async def _channel(self, context: Context) -> grpc.aio.Channel:
        lease = self._lease
        address = await lease.holder_address() if lease is not None else ""
        already = any(key == FORWARDED for key, _ in context.invocation_metadata() or ())
        if not address or (lease is not None and address == lease.address) or already:
            raise BatonError(
                Code.UNAVAILABLE,
                "NO_ENGINE",
                "no server process runs executions right now; retry shortly",
            )
        if not self._allowed:
            raise BatonError(
                Code.UNAVAILABLE,
                "ENGINE_ELSEWHERE",
                f"this process does not run executions: call {address}",
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
    """Ends the call with the engine process's status, details and error details."""
    await context.abort(
        error.code(), error.details() or "", trailing_metadata=error.trailing_metadata()
    )
