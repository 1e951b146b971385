"""How services join the gRPC server: by generic handlers only.

The generated `add_*_to_server` functions register each service twice: as a generic
handler (looked up by method name) and as "registered methods". grpc.aio keeps one pending
request task per registered method and, for every incoming call, waits on all of them
(`asyncio.wait` over the set, FIRST_COMPLETED). With Baton's fifty-odd methods that wait
cost about 90 us of server CPU per call, a fifth of an empty call's whole cost; generic
handlers are served by one request task. The calls and their handlers are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import grpc


def generic_only(server: grpc.aio.Server) -> grpc.aio.Server:
    """What to pass the generated `add_*_to_server` functions instead of `server`."""
    return cast(grpc.aio.Server, _GenericOnly(server))


class _GenericOnly:
    """Stands in for the server when a generated `add_*_to_server` function registers a
    service: keeps its generic handlers, drops the registered-method copy."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Not registered: the generic handler added beside it serves the same methods."""
