"""Every RPC, given an empty or malformed request, answers with a proper status code, never
INTERNAL or UNKNOWN (which would be a bug)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import message_factory

from baton import Client
from baton_server.app import SERVICES, Baton

BAD_NAMES = ["", "x", "agents/", "agents/UPPER", "workflows/a/b", "executions/" + "z" * 80]


def requests_for(method: Any) -> list[Any]:
    cls = message_factory.GetMessageClass(method.input_type)
    variants = [cls()]
    for field in method.input_type.fields:
        if field.type == field.TYPE_STRING and not field.is_repeated:
            variants += [cls(**{field.name: bad}) for bad in BAD_NAMES]
        if field.type in (field.TYPE_INT32, field.TYPE_INT64) and not field.is_repeated:
            variants.append(cls(**{field.name: -1}))
    return variants


@pytest.mark.timeout(120)
async def test_no_rpc_answers_internal(server: Baton, client: Client) -> None:
    channel = client._channel
    checked = 0
    for service in SERVICES:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            response_cls = message_factory.GetMessageClass(method.output_type)
            for request in requests_for(method):
                if method.server_streaming:
                    call = channel.unary_stream(
                        path,
                        request_serializer=type(request).SerializeToString,
                        response_deserializer=response_cls.FromString,
                    )(request, timeout=2)
                    try:
                        await call.read()
                        code = grpc.StatusCode.OK
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code()
                    finally:
                        call.cancel()
                else:
                    unary = channel.unary_unary(
                        path,
                        request_serializer=type(request).SerializeToString,
                        response_deserializer=response_cls.FromString,
                    )
                    try:
                        await unary(request, timeout=2)
                        code = grpc.StatusCode.OK
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code()
                assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                    path,
                    request,
                )
                checked += 1
    assert checked > 150
