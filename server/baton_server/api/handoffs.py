"""HandoffService: translates handoff requests to the definitions store and back."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from baton.v1 import handoff_pb2, handoff_pb2_grpc
from baton_server.api.convert import agent_ref, check_new_id, parse_name, timestamp
from baton_server.api.enums import enum_to_domain, enum_to_proto
from baton_server.api.requests import PageTokens, request_info, update_fields
from baton_server.api.status import translate_errors
from baton_server.definitions.service import HANDOFF_FIELDS, Definitions, etag_of
from baton_server.domain.definitions import Handoff, HandoffType
from baton_server.domain.ids import new_id
from baton_server.errors import invalid_field

Context = grpc.aio.ServicerContext[Any, Any]


def handoff_from_proto(message: handoff_pb2.Handoff, handoff_id: str) -> Handoff:
    """The domain handoff described by a request's Handoff message."""
    return Handoff(
        id=handoff_id,
        source_agent=agent_ref(message.source_agent),
        target_agent=agent_ref(message.target_agent),
        type=enum_to_domain(message.type, handoff_pb2.Handoff.Type, HandoffType, "handoff.type"),
        data_mapping=dict(message.data_mapping),
        trigger_conditions=list(message.trigger_conditions),
        priority=message.priority,
        description=message.description,
    )


def handoff_to_proto(handoff: Handoff) -> handoff_pb2.Handoff:
    """The Handoff message for a domain handoff."""
    return handoff_pb2.Handoff(
        name=f"handoffs/{handoff.id}",
        source_agent=f"agents/{handoff.source_agent}",
        target_agent=f"agents/{handoff.target_agent}",
        type=enum_to_proto(handoff.type, handoff_pb2.Handoff.Type),
        data_mapping=handoff.data_mapping,
        trigger_conditions=handoff.trigger_conditions,
        priority=handoff.priority,
        description=handoff.description,
        create_time=timestamp(handoff.create_time),
        update_time=timestamp(handoff.update_time),
        etag=etag_of(handoff),
    )


@translate_errors
class HandoffServicer(handoff_pb2_grpc.HandoffServiceServicer):
    """baton.v1.HandoffService."""

    def __init__(self, definitions: Definitions, tokens: PageTokens) -> None:
        self._definitions = definitions
        self._tokens = tokens

    async def CreateHandoff(
        self, request: handoff_pb2.CreateHandoffRequest, context: Context
    ) -> handoff_pb2.Handoff:
        info = request_info("CreateHandoff", request)
        if not request.HasField("handoff"):
            raise invalid_field("handoff", "is required", "FIELD_REQUIRED")
        handoff_id = check_new_id(request.handoff_id, "handoff_id") or new_id("handoff")
        handoff = handoff_from_proto(request.handoff, handoff_id)
        return handoff_to_proto(await self._definitions.create_handoff(handoff, info))

    async def GetHandoff(
        self, request: handoff_pb2.GetHandoffRequest, context: Context
    ) -> handoff_pb2.Handoff:
        handoff_id = parse_name(request.name, "handoffs", "name")
        return handoff_to_proto(await self._definitions.get_handoff(handoff_id))

    async def ListHandoffs(
        self, request: handoff_pb2.ListHandoffsRequest, context: Context
    ) -> handoff_pb2.ListHandoffsResponse:
        type_ = enum_to_domain(request.type, handoff_pb2.Handoff.Type, HandoffType, "type")
        source = agent_ref(request.source_agent)
        target = agent_ref(request.target_agent)
        filters = {"source": source, "target": target, "type": request.type}
        handoffs, token = await self._tokens.page(
            "ListHandoffs",
            request,
            filters,
            lambda after, limit: self._definitions.list_handoffs(
                after=after, limit=limit, source_agent=source, target_agent=target, type_=type_
            ),
            handoff_to_proto,
        )
        return handoff_pb2.ListHandoffsResponse(handoffs=handoffs, next_page_token=token)

    async def UpdateHandoff(
        self, request: handoff_pb2.UpdateHandoffRequest, context: Context
    ) -> handoff_pb2.Handoff:
        info = request_info("UpdateHandoff", request)
        handoff_id = parse_name(request.handoff.name, "handoffs", "handoff.name")
        fields = update_fields(request.update_mask, HANDOFF_FIELDS, resource="handoff")
        patch = handoff_from_proto(request.handoff, handoff_id)
        updated = await self._definitions.update_handoff(patch, fields, request.handoff.etag, info)
        return handoff_to_proto(updated)

    async def DeleteHandoff(
        self, request: handoff_pb2.DeleteHandoffRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteHandoff", request)
        handoff_id = parse_name(request.name, "handoffs", "name")
        await self._definitions.delete_handoff(handoff_id, request.etag, info)
        return empty_pb2.Empty()
