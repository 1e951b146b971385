"""AgentService: translates agent requests to the definitions store and back."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from baton.v1 import agent_pb2, agent_pb2_grpc
from baton_server.api.convert import (
    check_new_id,
    dict_to_struct,
    duration,
    parse_name,
    seconds_of,
    struct_to_dict,
    timestamp,
)
from baton_server.api.enums import enum_to_domain, enum_to_proto
from baton_server.api.requests import PageTokens, filter_words, request_info, update_fields
from baton_server.api.status import translate_errors
from baton_server.definitions.service import AGENT_FIELDS, Definitions, etag_of
from baton_server.domain.definitions import (
    Agent,
    AgentState,
    OpenAIRuntime,
    PythonRuntime,
    Runtime,
    WorkerRuntime,
)
from baton_server.domain.ids import new_id
from baton_server.errors import invalid_field

Context = grpc.aio.ServicerContext[Any, Any]
_RUNTIME_ALIASES = {"python": "runtime", "worker": "runtime", "openai": "runtime"}


def agent_from_proto(message: agent_pb2.Agent, agent_id: str) -> Agent:
    """The domain agent described by a request's Agent message."""
    return Agent(
        id=agent_id,
        display_name=message.display_name,
        description=message.description,
        capabilities=list(message.capabilities),
        tools=[tool.removeprefix("tools/") for tool in message.tools],
        labels=dict(message.labels),
        state=enum_to_domain(message.state, agent_pb2.Agent.State, AgentState, "agent.state")
        or AgentState.ACTIVE,
        config=struct_to_dict(message.config, "agent.config"),
        runtime=runtime_from_proto(message, message.WhichOneof("runtime"), "agent"),
        max_concurrency=message.max_concurrency,
    )


def runtime_from_proto(message: Any, kind: str | None, resource: str) -> Runtime | None:
    """The runtime in the `python`, `worker` or `openai` field (`kind`) of an Agent or a
    Tool message; field paths in errors start with `resource`."""
    if kind == "python":
        return PythonRuntime(message.python.entry_point, message.python.cpu_bound)
    if kind == "worker":
        return WorkerRuntime(
            heartbeat_timeout=seconds_of(
                message.worker, "heartbeat_timeout", f"{resource}.worker.heartbeat_timeout"
            ),
            schedule_timeout=seconds_of(
                message.worker, "schedule_timeout", f"{resource}.worker.schedule_timeout"
            ),
        )
    if kind == "openai":
        o = message.openai
        return OpenAIRuntime(
            base_url=o.base_url,
            model=o.model,
            instructions=o.instructions,
            api_key_env=o.api_key_env,
            temperature=o.temperature if o.HasField("temperature") else None,
            stream=o.stream,
            max_turns=o.max_turns,
        )
    return None


def agent_to_proto(agent: Agent) -> agent_pb2.Agent:
    """The Agent message for a domain agent."""
    message = agent_pb2.Agent(
        name=f"agents/{agent.id}",
        display_name=agent.display_name,
        description=agent.description,
        capabilities=agent.capabilities,
        tools=agent.tools,
        labels=agent.labels,
        state=enum_to_proto(agent.state, agent_pb2.Agent.State),
        config=dict_to_struct(agent.config),
        max_concurrency=agent.max_concurrency,
        create_time=timestamp(agent.create_time),
        update_time=timestamp(agent.update_time),
        etag=etag_of(agent),
    )
    runtime = agent.runtime
    if isinstance(runtime, PythonRuntime | WorkerRuntime):
        runtime_into(message, runtime)
    elif isinstance(runtime, OpenAIRuntime):
        message.openai.base_url = runtime.base_url
        message.openai.model = runtime.model
        message.openai.instructions = runtime.instructions
        message.openai.api_key_env = runtime.api_key_env
        message.openai.stream = runtime.stream
        message.openai.max_turns = runtime.max_turns
        if runtime.temperature is not None:
            message.openai.temperature = runtime.temperature
    return message


def runtime_into(message: Any, runtime: PythonRuntime | WorkerRuntime) -> None:
    """Sets the `python` or `worker` field of an Agent or a Tool message."""
    if isinstance(runtime, PythonRuntime):
        message.python.entry_point = runtime.entry_point
        message.python.cpu_bound = runtime.cpu_bound
        return
    message.worker.SetInParent()
    for field in ("heartbeat_timeout", "schedule_timeout"):
        value = duration(getattr(runtime, field))
        if value is not None:
            getattr(message.worker, field).CopyFrom(value)


@translate_errors
class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """baton.v1.AgentService."""

    def __init__(self, definitions: Definitions, tokens: PageTokens) -> None:
        self._definitions = definitions
        self._tokens = tokens

    async def CreateAgent(
        self, request: agent_pb2.CreateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        info = request_info("CreateAgent", request)
        if not request.HasField("agent"):
            raise invalid_field("agent", "is required", "FIELD_REQUIRED")
        agent_id = check_new_id(request.agent_id, "agent_id") or new_id("agent")
        agent = agent_from_proto(request.agent, agent_id)
        return agent_to_proto(await self._definitions.create_agent(agent, info))

    async def GetAgent(
        self, request: agent_pb2.GetAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        agent_id = parse_name(request.name, "agents", "name")
        return agent_to_proto(await self._definitions.get_agent(agent_id))

    async def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, context: Context
    ) -> agent_pb2.ListAgentsResponse:
        state = enum_to_domain(request.state, agent_pb2.Agent.State, AgentState, "state")
        capabilities = filter_words("capabilities", request.capabilities)
        filters = {"capabilities": capabilities, "state": request.state}
        agents, token = await self._tokens.page(
            "ListAgents",
            request,
            filters,
            lambda after, limit: self._definitions.list_agents(
                after=after, limit=limit, capabilities=capabilities, state=state
            ),
            agent_to_proto,
        )
        return agent_pb2.ListAgentsResponse(agents=agents, next_page_token=token)

    async def UpdateAgent(
        self, request: agent_pb2.UpdateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        info = request_info("UpdateAgent", request)
        agent_id = parse_name(request.agent.name, "agents", "agent.name")
        fields = update_fields(request.update_mask, AGENT_FIELDS, _RUNTIME_ALIASES, "agent")
        patch = agent_from_proto(request.agent, agent_id)
        updated = await self._definitions.update_agent(patch, fields, request.agent.etag, info)
        return agent_to_proto(updated)

    async def DeleteAgent(
        self, request: agent_pb2.DeleteAgentRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteAgent", request)
        agent_id = parse_name(request.name, "agents", "name")
        await self._definitions.delete_agent(agent_id, request.etag, request.force, info)
        return empty_pb2.Empty()
