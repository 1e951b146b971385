"""WorkflowService: translates workflow requests to the definitions store and back."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from baton.v1 import common_pb2, workflow_pb2, workflow_pb2_grpc
from baton_server.api.convert import (
    agent_ref,
    check_new_id,
    dict_to_struct,
    duration,
    optional_struct,
    parse_name,
    seconds_of,
    struct_to_dict,
    timestamp,
)
from baton_server.api.enums import enum_to_domain, enum_to_proto
from baton_server.api.requests import PageTokens, filter_words, request_info, update_fields
from baton_server.api.status import translate_errors
from baton_server.definitions.service import WORKFLOW_FIELDS, Definitions, etag_of
from baton_server.domain.definitions import (
    Approval,
    Loop,
    RetryPolicy,
    Step,
    WaitFor,
    Workflow,
    WorkflowState,
)
from baton_server.domain.ids import new_id
from baton_server.errors import invalid_field

Context = grpc.aio.ServicerContext[Any, Any]


def workflow_from_proto(message: workflow_pb2.Workflow, workflow_id: str) -> Workflow:
    """The domain workflow described by a request's Workflow message."""
    return Workflow(
        id=workflow_id,
        display_name=message.display_name,
        description=message.description,
        tags=list(message.tags),
        metadata=struct_to_dict(message.metadata, "workflow.metadata"),
        state=enum_to_domain(
            message.state, workflow_pb2.Workflow.State, WorkflowState, "workflow.state"
        )
        or WorkflowState.ACTIVE,
        input_schema=optional_struct(message, "input_schema", "workflow.input_schema"),
        output_mapping=optional_struct(message, "output_mapping", "workflow.output_mapping"),
        steps=[_step_from_proto(s, f"workflow.steps[{i}]") for i, s in enumerate(message.steps)],
    )


def retry_policy_from_proto(message: Any, field: str) -> RetryPolicy | None:
    """The `retry_policy` of a Step or Tool message, if set (`field`: the holder's path)."""
    if not message.HasField("retry_policy"):
        return None
    p = message.retry_policy
    return RetryPolicy(
        max_attempts=p.max_attempts,
        initial_interval=seconds_of(
            p, "initial_interval", f"{field}.retry_policy.initial_interval"
        ),
        backoff_coefficient=p.backoff_coefficient,
        maximum_interval=seconds_of(
            p, "maximum_interval", f"{field}.retry_policy.maximum_interval"
        ),
        jitter=p.jitter,
        non_retryable_error_types=list(p.non_retryable_error_types),
    )


def retry_policy_to_proto(p: RetryPolicy) -> common_pb2.RetryPolicy:
    """A RetryPolicy message."""
    return common_pb2.RetryPolicy(
        max_attempts=p.max_attempts,
        initial_interval=duration(p.initial_interval),
        backoff_coefficient=p.backoff_coefficient,
        maximum_interval=duration(p.maximum_interval),
        jitter=p.jitter,
        non_retryable_error_types=p.non_retryable_error_types,
    )


def _step_from_proto(message: workflow_pb2.Step, field: str) -> Step:
    policy = retry_policy_from_proto(message, field)
    wait_for = None
    if message.HasField("wait_for"):
        w = message.wait_for
        wait_for = WaitFor(
            signal=w.signal,
            timeout=seconds_of(w, "timeout", f"{field}.wait_for.timeout"),
            when=w.when,
        )
    approval = None
    if message.HasField("approval"):
        a = message.approval
        approval = Approval(
            roles=list(a.roles),
            timeout=seconds_of(a, "timeout", f"{field}.approval.timeout"),
            prompt=a.prompt,
            continue_on_reject=a.continue_on_reject,
        )
    return Step(
        id=message.id,
        display_name=message.display_name,
        wait_for=wait_for,
        approval=approval,
        sleep=seconds_of(message, "sleep", f"{field}.sleep"),
        sleep_until=message.sleep_until,
        workflow=message.workflow.removeprefix("workflows/"),
        for_each=message.for_each,
        max_parallel=message.max_parallel,
        continue_on_error=message.continue_on_error,
        output_schema=optional_struct(message, "output_schema", f"{field}.output_schema"),
        loop=Loop(
            until=message.loop.until,
            max_iterations=message.loop.max_iterations,
            start=message.loop.start,
        )
        if message.HasField("loop")
        else None,
        agent=agent_ref(message.agent),
        capability=message.capability,
        input_mapping=optional_struct(message, "input_mapping", f"{field}.input_mapping"),
        output_mapping=optional_struct(message, "output_mapping", f"{field}.output_mapping"),
        depends_on=list(message.depends_on),
        when=message.when,
        timeout=seconds_of(message, "timeout", f"{field}.timeout"),
        retry_policy=policy,
        fallback_agents=[agent_ref(a) for a in message.fallback_agents],
    )


def workflow_to_proto(workflow: Workflow) -> workflow_pb2.Workflow:
    """The Workflow message for a domain workflow."""
    message = workflow_pb2.Workflow(
        name=f"workflows/{workflow.id}",
        display_name=workflow.display_name,
        description=workflow.description,
        tags=workflow.tags,
        metadata=dict_to_struct(workflow.metadata),
        state=enum_to_proto(workflow.state, workflow_pb2.Workflow.State),
        revision=workflow.revision,
        steps=[_step_to_proto(s) for s in workflow.steps],
        create_time=timestamp(workflow.create_time),
        update_time=timestamp(workflow.update_time),
        etag=etag_of(workflow) if workflow.version else "",
    )
    if workflow.input_schema is not None:
        message.input_schema.CopyFrom(dict_to_struct(workflow.input_schema))
    if workflow.output_mapping is not None:
        message.output_mapping.CopyFrom(dict_to_struct(workflow.output_mapping))
    return message


def _step_to_proto(step: Step) -> workflow_pb2.Step:
    message = workflow_pb2.Step(
        id=step.id,
        display_name=step.display_name,
        depends_on=step.depends_on,
        when=step.when,
        fallback_agents=[f"agents/{a}" for a in step.fallback_agents],
        timeout=duration(step.timeout),
    )
    if step.wait_for is not None:
        message.wait_for.CopyFrom(
            workflow_pb2.WaitFor(
                signal=step.wait_for.signal,
                timeout=duration(step.wait_for.timeout),
                when=step.wait_for.when,
            )
        )
    elif step.approval is not None:
        message.approval.CopyFrom(
            workflow_pb2.Approval(
                roles=step.approval.roles,
                timeout=duration(step.approval.timeout),
                prompt=step.approval.prompt,
                continue_on_reject=step.approval.continue_on_reject,
            )
        )
    elif step.sleep is not None:
        message.sleep.FromNanoseconds(round(step.sleep * 1e9))
    elif step.sleep_until:
        message.sleep_until = step.sleep_until
    elif step.workflow:
        message.workflow = f"workflows/{step.workflow}"
    elif step.capability:
        message.capability = step.capability
    else:
        message.agent = f"agents/{step.agent}"
    if step.for_each:
        message.for_each = step.for_each
        message.max_parallel = step.max_parallel
        message.continue_on_error = step.continue_on_error
    if step.output_schema is not None:
        message.output_schema.CopyFrom(dict_to_struct(step.output_schema))
    if step.loop is not None:
        message.loop.CopyFrom(
            workflow_pb2.Loop(
                until=step.loop.until,
                max_iterations=step.loop.max_iterations,
                start=step.loop.start,
            )
        )
    if step.input_mapping is not None:
        message.input_mapping.CopyFrom(dict_to_struct(step.input_mapping))
    if step.output_mapping is not None:
        message.output_mapping.CopyFrom(dict_to_struct(step.output_mapping))
    if step.retry_policy is not None:
        message.retry_policy.CopyFrom(retry_policy_to_proto(step.retry_policy))
    return message


@translate_errors
class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    """baton.v1.WorkflowService."""

    def __init__(self, definitions: Definitions, tokens: PageTokens) -> None:
        self._definitions = definitions
        self._tokens = tokens

    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        info = request_info("CreateWorkflow", request)
        if not request.HasField("workflow"):
            raise invalid_field("workflow", "is required", "FIELD_REQUIRED")
        workflow_id = check_new_id(request.workflow_id, "workflow_id") or new_id("workflow")
        workflow = workflow_from_proto(request.workflow, workflow_id)
        return workflow_to_proto(await self._definitions.create_workflow(workflow, info))

    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        workflow_id = parse_name(request.name, "workflows", "name")
        if request.revision < 0:
            raise invalid_field("revision", "must be 0 (latest) or a revision number")
        return workflow_to_proto(
            await self._definitions.get_workflow(workflow_id, request.revision)
        )

    async def ListWorkflows(
        self, request: workflow_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_pb2.ListWorkflowsResponse:
        state = enum_to_domain(request.state, workflow_pb2.Workflow.State, WorkflowState, "state")
        tags = filter_words("tags", request.tags)
        filters = {"tags": tags, "state": request.state}
        workflows, token = await self._tokens.page(
            "ListWorkflows",
            request,
            filters,
            lambda after, limit: self._definitions.list_workflows(
                after=after, limit=limit, tags=tags, state=state
            ),
            workflow_to_proto,
        )
        return workflow_pb2.ListWorkflowsResponse(workflows=workflows, next_page_token=token)

    async def UpdateWorkflow(
        self, request: workflow_pb2.UpdateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        info = request_info("UpdateWorkflow", request)
        workflow_id = parse_name(request.workflow.name, "workflows", "workflow.name")
        fields = update_fields(request.update_mask, WORKFLOW_FIELDS, resource="workflow")
        patch = workflow_from_proto(request.workflow, workflow_id)
        updated = await self._definitions.update_workflow(
            patch, fields, request.workflow.etag, info
        )
        return workflow_to_proto(updated)

    async def DeleteWorkflow(
        self, request: workflow_pb2.DeleteWorkflowRequest, context: Context
    ) -> empty_pb2.Empty:
        info = request_info("DeleteWorkflow", request)
        workflow_id = parse_name(request.name, "workflows", "name")
        await self._definitions.delete_workflow(workflow_id, request.etag, info)
        return empty_pb2.Empty()

    async def ValidateWorkflow(
        self, request: workflow_pb2.ValidateWorkflowRequest, context: Context
    ) -> workflow_pb2.ValidateWorkflowResponse:
        if not request.HasField("workflow"):
            raise invalid_field("workflow", "is required", "FIELD_REQUIRED")
        name = request.workflow.name
        workflow_id = parse_name(name, "workflows", "workflow.name") if name else "unsaved"
        workflow = workflow_from_proto(request.workflow, workflow_id)
        order = await self._definitions.validate_workflow(workflow)
        normalised = workflow_to_proto(workflow)
        if not name:
            normalised.ClearField("name")
        return workflow_pb2.ValidateWorkflowResponse(workflow=normalised, topological_order=order)
