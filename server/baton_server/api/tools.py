"""ToolService: translates tool requests to the definitions store and back."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from baton.v1 import tool_pb2, tool_pb2_grpc
from baton_server.api.agents import runtime_from_proto, runtime_into
from baton_server.api.convert import (
    agent_ref,
    check_new_id,
    dict_to_struct,
    duration,
    optional_struct,
    parse_name,
    seconds_of,
    timestamp,
)
from baton_server.api.requests import PageTokens, request_info, update_fields
from baton_server.api.status import translate_errors
from baton_server.api.workflows import retry_policy_from_proto, retry_policy_to_proto
from baton_server.definitions.service import TOOL_FIELDS, Definitions, etag_of
from baton_server.domain.definitions import PythonRuntime, WorkerRuntime
from baton_server.domain.ids import new_id
from baton_server.domain.tools import (
    AgentTool,
    HttpTool,
    Implementation,
    Tool,
    WorkflowTool,
)
from baton_server.errors import invalid_field

Context = grpc.aio.ServicerContext[Any, Any]
_IMPLEMENTATIONS = ("python", "worker", "http", "agent", "workflow")


def tool_from_proto(message: tool_pb2.Tool, tool_id: str) -> Tool:
    """The domain tool a request's Tool message describes."""
    kind = message.WhichOneof("implementation")
    implementation: Implementation | None = None
    if kind in ("python", "worker"):
        runtime = runtime_from_proto(message, kind, "tool")
        assert isinstance(runtime, PythonRuntime | WorkerRuntime)
        implementation = runtime
    elif kind == "http":
        h = message.http
        implementation = HttpTool(
            url=h.url,
            method=h.method or "POST",
            headers=dict(h.headers),
            body=optional_struct(h, "body", "tool.http.body"),
        )
    elif kind == "agent":
        implementation = AgentTool(agent_ref(message.agent))
    elif kind == "workflow":
        implementation = WorkflowTool(message.workflow.removeprefix("workflows/"))
    return Tool(
        id=tool_id,
        description=message.description,
        parameters=optional_struct(message, "parameters", "tool.parameters"),
        implementation=implementation,
        timeout=seconds_of(message, "timeout", "tool.timeout"),
        retry_policy=retry_policy_from_proto(message, "tool"),
    )


def tool_to_proto(tool: Tool) -> tool_pb2.Tool:
    """The Tool message for a domain tool."""
    message = tool_pb2.Tool(
        name=f"tools/{tool.id}",
        description=tool.description,
        timeout=duration(tool.timeout),
        create_time=timestamp(tool.create_time),
        update_time=timestamp(tool.update_time),
        etag=etag_of(tool),
    )
    if tool.parameters is not None:
        message.parameters.CopyFrom(dict_to_struct(tool.parameters))
    if tool.retry_policy is not None:
        message.retry_policy.CopyFrom(retry_policy_to_proto(tool.retry_policy))
    implementation = tool.implementation
    if isinstance(implementation, PythonRuntime | WorkerRuntime):
        runtime_into(message, implementation)
    elif isinstance(implementation, HttpTool):
        message.http.CopyFrom(
            tool_pb2.HttpTool(
                method=implementation.method,
                url=implementation.url,
                headers=implementation.headers,
            )
        )
        if implementation.body is not None:
            message.http.body.CopyFrom(dict_to_struct(implementation.body))
    elif isinstance(implementation, AgentTool):
        message.agent = f"agents/{implementation.agent}"
    elif isinstance(implementation, WorkflowTool):
        message.workflow = f"workflows/{implementation.workflow}"
    return message


@translate_errors
class ToolServicer(tool_pb2_grpc.ToolServiceServicer):
    """baton.v1.ToolService."""

    def __init__(self, definitions: Definitions, tokens: PageTokens) -> None:
        self._definitions = definitions
        self._tokens = tokens

    async def CreateTool(
        self, request: tool_pb2.CreateToolRequest, context: Context
    ) -> tool_pb2.Tool:
        info = request_info("CreateTool", request)
        if not request.HasField("tool"):
            raise invalid_field("tool", "is required", "FIELD_REQUIRED")
        tool_id = check_new_id(request.tool_id, "tool_id") or new_id("tool")
        tool = tool_from_proto(request.tool, tool_id)
        return tool_to_proto(await self._definitions.create_tool(tool, info))

    async def GetTool(self, request: tool_pb2.GetToolRequest, context: Context) -> tool_pb2.Tool:
        tool_id = parse_name(request.name, "tools", "name")
        return tool_to_proto(await self._definitions.get_tool(tool_id))

    async def ListTools(
        self, request: tool_pb2.ListToolsRequest, context: Context
    ) -> tool_pb2.ListToolsResponse:
        tools, token = await self._tokens.page(
            "ListTools",
            request,
            {},
            lambda after, limit: self._definitions.list_tools(after=after, limit=limit),
            tool_to_proto,
        )
        return tool_pb2.ListToolsResponse(tools=tools, next_page_token=token)

    async def UpdateTool(
        self, request: tool_pb2.UpdateToolRequest, context: Context
    ) -> tool_pb2.Tool:
        info = request_info("UpdateTool", request)
        tool_id = parse_name(request.tool.name, "tools", "tool.name")
        aliases = dict.fromkeys(_IMPLEMENTATIONS, "implementation")
        fields = update_fields(request.update_mask, TOOL_FIELDS, aliases, resource="tool")
        patch = tool_from_proto(request.tool, tool_id)
        updated = await self._definitions.update_tool(patch, fields, request.tool.etag, info)
        return tool_to_proto(updated)

    async def DeleteTool(
        self, request: tool_pb2.DeleteToolRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteTool", request)
        tool_id = parse_name(request.name, "tools", "name")
        await self._definitions.delete_tool(tool_id, request.etag, info)
        return empty_pb2.Empty()
