"""Every RPC x {no token, bad token, each role}, repeated and interleaved: the right code
every time, and a refusal never tells a caller more than its own role. The server is a real
process: a refusal answered from a stale cache showed up there (an object's id reused)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import start_process, stop_processes
from google.rpc import error_details_pb2, status_pb2

from baton_server.app import SERVICES

TOKENS = {
    "reader": "r-tok",
    "operator": "o-tok",
    "worker": "w-tok",
    "admin": "a-tok",
    "reviewer": "v-tok",  # a role Baton does not define: it reads, and decides approvals
}
CALLERS: dict[str, str | None] = {"anonymous": None, "stranger": "not-a-token", **TOKENS}
_READS = ("Get", "List", "Wait", "Stream", "Validate")


def allowed_roles(service: str, method: str) -> set[str]:
    """Who may call what, as the README's security section states it."""
    if service == "baton.v1.WorkerService":
        return {"worker", "admin"}
    if method.startswith(_READS) or method == "ApproveStep":  # the step then says who decides
        return {"reader", "operator", "admin", "reviewer"}
    return {"operator", "admin"}


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    raise AssertionError(f"no ErrorInfo in {error}")


async def call(channel: grpc.aio.Channel, path: str, streaming: bool, token: str | None) -> Any:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    identity = lambda b: b  # noqa: E731 - raw bytes both ways
    try:
        if streaming:
            stream = channel.unary_stream(path, identity, identity)(
                b"", timeout=10, metadata=metadata
            )
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(path, identity, identity)(b"", timeout=10, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return exc
    return None


@pytest.mark.timeout(120)
@pytest.mark.sqlite_only
async def test_every_rpc_for_every_caller(tmp_path: Path) -> None:
    tokens = ",".join(f"{t}={r}" for r, t in TOKENS.items())
    process, port = await start_process(
        tmp_path / "auth.db", extra_env={"BATON_AUTH_TOKENS": tokens}
    )
    try:
        await check_every_call(port)
    finally:
        stop_processes([process])


async def check_every_call(port: int) -> None:
    cases = [
        (service.full_name, method.name, method.server_streaming, caller)
        for service in SERVICES
        for method in service.methods
        for caller in CALLERS
    ]
    # Repeated and interleaved: a refusal must not depend on what came before it.
    schedule = cases * 3
    random.Random(7).shuffle(schedule)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        results = await asyncio.gather(
            *(
                call(channel, f"/{service}/{method}", streaming, CALLERS[caller])
                for service, method, streaming, caller in schedule
            )
        )
        # And one after the other, alternating callers on one method (a refusal handler
        # freed after one call must never answer the next).
        alternating = [("anonymous", "reader", "worker")[i % 3] for i in range(300)]
        for caller in alternating:
            path = "/baton.v1.AgentService/CreateAgent"
            schedule.append(("baton.v1.AgentService", "CreateAgent", False, caller))
            results.append(await call(channel, path, False, CALLERS[caller]))
    checked = 0
    for (service, method, _, caller), error in zip(schedule, results, strict=True):
        where = f"{caller} -> {method}"
        code = error.code() if error is not None else grpc.StatusCode.OK
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), where
        if caller in ("anonymous", "stranger"):
            assert code is grpc.StatusCode.UNAUTHENTICATED, where
            assert "role" not in (error.details() or ""), where
            assert error_info(error).metadata == {}, where
        elif caller in allowed_roles(service, method):
            assert code not in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            ), (where, error)
        else:
            assert code is grpc.StatusCode.PERMISSION_DENIED, where
            info = error_info(error)
            assert info.reason == "PERMISSION_DENIED"
            assert info.metadata["role"] == caller, where  # its own role, never another's
        checked += 1
    assert checked == len(cases) * 3 + 300 > 800
