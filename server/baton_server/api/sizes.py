"""How large a definition is as the API sends it back: the bound the definition store checks
before it stores one, so that every Get (and every List page) fits in a message."""

from __future__ import annotations

from typing import Any

from baton_server.api.agents import agent_to_proto
from baton_server.api.handoffs import handoff_to_proto
from baton_server.api.schedules import schedule_to_proto
from baton_server.api.tools import tool_to_proto
from baton_server.api.workflows import workflow_to_proto
from baton_server.domain.definitions import Agent, Handoff, Workflow
from baton_server.domain.schedules import Firing, Schedule
from baton_server.domain.tools import Tool
from baton_server.schedules.service import NEXT_RUN_TIMES, ScheduleView


def definition_size(resource: Any) -> int:
    """The encoded size of the resource's message, in bytes."""
    if isinstance(resource, Agent):
        return int(agent_to_proto(resource).ByteSize())
    if isinstance(resource, Workflow):
        return int(workflow_to_proto(resource).ByteSize())
    if isinstance(resource, Handoff):
        return int(handoff_to_proto(resource).ByteSize())
    if isinstance(resource, Tool):
        return int(tool_to_proto(resource).ByteSize())
    if isinstance(resource, Schedule):
        # With room for what firing adds: times, counts, an execution name and an error.
        view = ScheduleView(resource, Firing(cursor=0.0), [0.0] * NEXT_RUN_TIMES)
        return int(schedule_to_proto(view).ByteSize()) + 1200
    raise TypeError(f"not a definition: {type(resource).__name__}")
