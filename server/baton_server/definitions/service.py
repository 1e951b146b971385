"""Creating, reading, listing, updating and deleting definitions (agents, workflows,
handoffs, schedules): validation, referential checks, revisions, idempotent requests and the
read-through cache."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from baton_server.domain.agent_policy import AgentPolicy
from baton_server.domain.definitions import (
    Agent,
    AgentState,
    Handoff,
    HandoffType,
    Workflow,
    WorkflowState,
)
from baton_server.domain.paging import Page
from baton_server.domain.schedules import Schedule, ScheduleState
from baton_server.domain.tools import AgentTool, Tool, WorkflowTool
from baton_server.errors import (
    BatonError,
    Code,
    FieldViolation,
    invalid_field,
    not_found,
    raise_if_invalid,
)
from baton_server.idempotency import RequestInfo, once
from baton_server.language.validation import (
    validate_agent,
    validate_handoff,
    validate_schedule,
    validate_tool,
    validate_workflow,
)
from baton_server.storage.cache import RedisCache
from baton_server.storage.database import Database, SqlConnection
from baton_server.storage.definitions import (
    AGENTS,
    HANDOFFS,
    SCHEDULES,
    TOOLS,
    WORKFLOWS,
    DefinitionRepository,
    Filter,
    Table,
)
from baton_server.storage.idempotency import IdempotencyRepository

log = logging.getLogger(__name__)


class Resource(Protocol):
    """What every definition has."""

    id: str
    create_time: float
    update_time: float
    version: int

    def to_doc(self) -> dict[str, Any]: ...


R = TypeVar("R", Agent, Workflow, Handoff, Schedule, Tool)


@dataclass(frozen=True)
class Kind(Generic[R]):
    """How one kind of definition is stored and indexed."""

    name: str
    table: Table
    from_doc: Callable[[dict[str, Any]], R]
    index: Callable[[R], dict[str, str]]
    multi: Callable[[R], dict[str, list[str]]]


AGENT = Kind[Agent](
    "agent",
    AGENTS,
    Agent.from_doc,
    lambda a: {"state": a.state.value},
    lambda a: {"capabilities": a.capabilities, "tools": a.tools},
)
WORKFLOW = Kind[Workflow](
    "workflow",
    WORKFLOWS,
    Workflow.from_doc,
    lambda w: {"state": w.state.value},
    lambda w: {"tags": w.tags, "agents": w.agent_ids()},
)
HANDOFF = Kind[Handoff](
    "handoff",
    HANDOFFS,
    Handoff.from_doc,
    lambda h: {
        "source": h.source_agent,
        "target": h.target_agent,
        "type": h.type.value if h.type else "",
    },
    lambda h: {},
)


SCHEDULE = Kind[Schedule](
    "schedule",
    SCHEDULES,
    Schedule.from_doc,
    lambda s: {"state": s.state.value, "workflow": s.workflow_id},
    lambda s: {},
)


def _runs(tool: Tool) -> list[str]:
    """The agent or workflow a tool runs, by resource name."""
    implementation = tool.implementation
    if isinstance(implementation, AgentTool):
        return [f"agents/{implementation.agent}"]
    if isinstance(implementation, WorkflowTool):
        return [f"workflows/{implementation.workflow}"]
    return []


TOOL = Kind[Tool]("tool", TOOLS, Tool.from_doc, lambda t: {}, lambda t: {"runs": _runs(t)})
WORKFLOWS_TO_RUN = 1024
"""Most workflows `workflow_to_run` keeps."""

VersionCheck = Callable[[SqlConnection], Awaitable[None]]
"""Run in a write transaction: raises WorkflowChangedError when a workflow changed."""


class WorkflowChangedError(Exception):
    """The workflow changed since its latest revision was read."""


def etag_of(resource: Resource) -> str:
    """The resource's etag: changes on every write."""
    return format(resource.version, "x")


# Fields the API may replace on update, per kind.
AGENT_FIELDS = frozenset(
    {
        "display_name",
        "description",
        "capabilities",
        "tools",
        "labels",
        "state",
        "config",
        "runtime",
        "max_concurrency",
    }
)
WORKFLOW_FIELDS = frozenset(
    {
        "display_name",
        "description",
        "tags",
        "metadata",
        "state",
        "input_schema",
        "output_mapping",
        "steps",
    }
)
HANDOFF_FIELDS = frozenset(
    {
        "source_agent",
        "target_agent",
        "type",
        "data_mapping",
        "trigger_conditions",
        "priority",
        "description",
    }
)

SCHEDULE_FIELDS = frozenset(
    {
        "display_name",
        "description",
        "workflow_id",
        "workflow_revision",
        "input",
        "labels",
        "cron",
        "interval",
        "time_zone",
        "overlap_policy",
        "catch_up_policy",
        "catch_up_limit",
    }
)

TOOL_FIELDS = frozenset({"description", "parameters", "implementation", "timeout", "retry_policy"})

Check = Callable[[SqlConnection, R], Awaitable[None]]
AfterWrite = Callable[[SqlConnection, int, R], Awaitable[None]]
Measure = Callable[[Any], int]
"""The size of a definition as the API sends it back, in bytes."""


class Definitions:
    """The definition store the API calls: every write is one transaction, checked and
    idempotent; reads go through the cache when there is one."""

    def __init__(
        self,
        db: Database,
        repo: DefinitionRepository,
        idempotency: IdempotencyRepository,
        cache: RedisCache | None = None,
        clock: Callable[[], float] = time.time,
        workflow_in_use: Callable[[SqlConnection, str], Awaitable[bool]] | None = None,
        policy: AgentPolicy | None = None,
        measure: Measure | None = None,
        max_bytes: int = 1024 * 1024,
    ) -> None:
        self.db = db
        self.repo = repo
        self.idempotency = idempotency
        self.cache = cache
        self.clock = clock
        self.workflow_in_use = workflow_in_use
        self.policy = policy or AgentPolicy()
        self._measure = measure
        self._max_bytes = max_bytes
        self._to_run: dict[str, Workflow] = {}
        """The latest revision of workflows executions started from, by id (shared)."""

    async def _checked(
        self, kind: Kind[Any], resource: Any, validate: Callable[[], list[FieldViolation]]
    ) -> None:
        """Validates a new definition and bounds its size, in a thread: both can take a
        while for a large one, and the event loop serves other calls meanwhile."""

        def check() -> None:
            raise_if_invalid(validate())
            self._check_size(kind, resource)

        await asyncio.to_thread(check)

    def _check_size(self, kind: Kind[Any], resource: Any) -> None:
        """Refuses a definition too large to be sent back whole (and listed)."""
        if self._measure is None:
            return
        size = self._measure(resource)
        if size > self._max_bytes:
            raise invalid_field(
                kind.name,
                f"is {size} bytes encoded; at most {self._max_bytes} (a quarter of "
                "BATON_MAX_MESSAGE_BYTES), so that it can always be read back",
                "RESOURCE_TOO_LARGE",
            )

    # Agents ---------------------------------------------------------------------------

    async def create_agent(self, agent: Agent, request: RequestInfo) -> Agent:
        """Stores a new agent."""
        await self._checked(AGENT, agent, lambda: validate_agent(agent, self.policy))
        return await self._create(AGENT, agent, request, self._check_agent_tools)

    async def get_agent(self, agent_id: str) -> Agent:
        """Returns an agent or raises AGENT_NOT_FOUND."""
        return await self._get(AGENT, agent_id)

    async def list_agents(
        self, *, after: int, limit: int, capabilities: Sequence[str], state: AgentState | None
    ) -> Page[Agent]:
        """Lists agents having all `capabilities`, in `state` if given."""
        where = Filter({"state": state.value} if state else {}, {"capabilities": capabilities})
        return await self._list(AGENT, after, limit, where)

    async def update_agent(
        self, patch: Agent, fields: set[str], etag: str, request: RequestInfo
    ) -> Agent:
        """Replaces `fields` of the agent `patch.id` with the values in `patch`."""

        def mutate(current: Agent) -> Agent:
            updated = _merge(current, patch, fields)
            raise_if_invalid(validate_agent(updated, self.policy))
            self._check_size(AGENT, updated)
            return updated

        return await self._update(AGENT, patch.id, mutate, etag, request, self._check_agent_tools)

    async def delete_agent(
        self, agent_id: str, etag: str, force: bool, request: RequestInfo
    ) -> None:
        """Deletes an agent; refuses while workflows or handoffs refer to it unless forced."""

        async def before(conn: SqlConnection) -> list[tuple[Kind[Any], str]]:
            if not force:
                workflows, handoffs = await self.repo.agent_references(conn, agent_id)
                tools = await self.repo.tools_running(conn, f"agents/{agent_id}")
                if workflows or handoffs or tools:
                    users = (
                        [f"workflows/{w}" for w in workflows]
                        + [f"handoffs/{h}" for h in handoffs]
                        + [f"tools/{t}" for t in tools]
                    )
                    raise BatonError(
                        Code.FAILED_PRECONDITION,
                        "AGENT_IN_USE",
                        f"agent {agent_id!r} is used by {', '.join(users)}; "
                        "delete those first or set force",
                        metadata={"name": f"agents/{agent_id}", "usedBy": ",".join(users)},
                    )
            return [(HANDOFF, h) for h in await self.repo.delete_handoffs_of(conn, agent_id)]

        await self._delete(AGENT, agent_id, etag, request, before)

    async def _check_agent_tools(self, conn: SqlConnection, agent: Agent) -> None:
        found = await self.repo.get_many(conn, TOOLS, sorted(set(agent.tools)))
        raise_if_invalid(
            [
                FieldViolation(
                    f"agent.tools[{i}]", f"tool 'tools/{tool}' does not exist", "UNKNOWN_TOOL"
                )
                for i, tool in enumerate(agent.tools)
                if tool not in found
            ]
        )

    # Tools ----------------------------------------------------------------------------

    async def create_tool(self, tool: Tool, request: RequestInfo) -> Tool:
        """Stores a new tool; an agent or workflow it runs must exist."""
        await self._checked(TOOL, tool, lambda: validate_tool(tool, self.policy))
        return await self._create(TOOL, tool, request, self._check_tool_references)

    async def get_tool(self, tool_id: str) -> Tool:
        """Returns a tool or raises TOOL_NOT_FOUND."""
        return await self._get(TOOL, tool_id)

    async def list_tools(self, *, after: int, limit: int) -> Page[Tool]:
        """Lists tools in creation order."""
        return await self._list(TOOL, after, limit, Filter({}, {}))

    async def update_tool(
        self, patch: Tool, fields: set[str], etag: str, request: RequestInfo
    ) -> Tool:
        """Replaces `fields` of tool `patch.id`."""

        def mutate(current: Tool) -> Tool:
            updated = _merge(current, patch, fields)
            raise_if_invalid(validate_tool(updated, self.policy))
            self._check_size(TOOL, updated)
            return updated

        return await self._update(
            TOOL, patch.id, mutate, etag, request, self._check_tool_references
        )

    async def delete_tool(self, tool_id: str, etag: str, request: RequestInfo) -> None:
        """Deletes a tool; refused while an agent names it."""

        async def before(conn: SqlConnection) -> list[tuple[Kind[Any], str]]:
            users = await self.repo.tool_users(conn, tool_id)
            if users:
                names = ", ".join(f"agents/{a}" for a in users)
                raise BatonError(
                    Code.FAILED_PRECONDITION,
                    "TOOL_IN_USE",
                    f"tool {tool_id!r} is used by {names}; take it from them first",
                    metadata={"name": f"tools/{tool_id}", "usedBy": names},
                )
            return []

        await self._delete(TOOL, tool_id, etag, request, before)

    async def _check_tool_references(self, conn: SqlConnection, tool: Tool) -> None:
        implementation = tool.implementation
        missing: list[FieldViolation] = []
        if isinstance(implementation, AgentTool):
            if await self.repo.get(conn, AGENTS, implementation.agent) is None:
                missing.append(
                    FieldViolation(
                        "tool.agent",
                        f"agent 'agents/{implementation.agent}' does not exist",
                        "UNKNOWN_AGENT",
                    )
                )
        elif (
            isinstance(implementation, WorkflowTool)
            and await self.repo.get(conn, WORKFLOWS, implementation.workflow) is None
        ):
            missing.append(
                FieldViolation(
                    "tool.workflow",
                    f"workflow 'workflows/{implementation.workflow}' does not exist",
                    "UNKNOWN_WORKFLOW",
                )
            )
        raise_if_invalid(missing)

    # Workflows ------------------------------------------------------------------------

    async def validate_workflow(self, workflow: Workflow) -> list[str]:
        """Checks a workflow as CreateWorkflow would; returns a topological order of its steps."""
        violations, order = await asyncio.to_thread(validate_workflow, workflow)
        raise_if_invalid(violations)
        await self.db.read(lambda conn: self._check_workflow_agents(conn, workflow))
        return order

    async def create_workflow(self, workflow: Workflow, request: RequestInfo) -> Workflow:
        """Stores a new workflow at revision 1."""
        workflow = dataclasses.replace(workflow, revision=1)
        await self._checked(WORKFLOW, workflow, lambda: validate_workflow(workflow)[0])
        return await self._create(
            WORKFLOW, workflow, request, self._check_workflow_agents, self._store_revision
        )

    async def get_workflow(self, workflow_id: str, revision: int = 0) -> Workflow:
        """Returns the latest revision, or revision `revision` when it is not 0."""
        latest = await self._get(WORKFLOW, workflow_id)
        if revision in (0, latest.revision):
            return latest
        doc = None
        if 0 < revision < latest.revision:
            doc = await self.db.read(
                lambda conn: self.repo.get_revision(conn, workflow_id, revision)
            )
        if doc is None:
            raise BatonError(
                Code.NOT_FOUND,
                "WORKFLOW_REVISION_NOT_FOUND",
                f"workflow {workflow_id!r} has no revision {revision} "
                f"(latest is {latest.revision})",
                metadata={"name": f"workflows/{workflow_id}", "revision": str(revision)},
            )
        return Workflow.from_doc(doc)

    async def workflow_to_start(
        self, workflow_id: str, revision: int = 0
    ) -> tuple[Workflow, VersionCheck | None]:
        """As `workflow_to_run`, for a new execution, without reading the database when the
        latest revision is at hand: with it comes the check to run in the transaction that
        stores the execution, which raises WorkflowChangedError if the workflow changed
        since (the caller forgets it and starts over). No check for an older revision (it
        never changes)."""
        latest = self._to_run.get(workflow_id)
        if self.cache is not None or latest is None or revision not in (0, latest.revision):
            workflow = await self.workflow_to_run(workflow_id, revision)
            latest = self._to_run.get(workflow_id)
            if workflow is not latest:
                return workflow, None
        assert latest is not None
        return latest, functools.partial(self._still_current, latest)

    async def _still_current(self, workflow: Workflow, conn: SqlConnection) -> None:
        version = await self.repo.version(conn, WORKFLOW.table, workflow.id)
        if version != workflow.version:
            raise WorkflowChangedError(workflow.id)

    def forget(self, workflow_id: str) -> None:
        """Drops the latest revision kept for `workflow_to_run` (it changed)."""
        self._to_run.pop(workflow_id, None)

    async def workflow_to_run(self, workflow_id: str, revision: int = 0) -> Workflow:
        """As `get_workflow`, for starting and running executions: the latest revision is
        read in full only when its version changed (a new execution reads the version
        alone), and the same object is answered meanwhile, so callers must not change it."""
        if self.cache is not None:  # (the cache answers without reading the database)
            return await self.get_workflow(workflow_id, revision)
        version = await self.db.read(
            lambda conn: self.repo.version(conn, WORKFLOW.table, workflow_id)
        )
        latest = self._to_run.get(workflow_id)
        if latest is None or version is None or latest.version != version:
            latest = await self._get(WORKFLOW, workflow_id)  # NOT_FOUND if it is gone
            self._to_run.pop(workflow_id, None)
            if len(self._to_run) >= WORKFLOWS_TO_RUN:
                del self._to_run[next(iter(self._to_run))]  # the one kept longest
            self._to_run[workflow_id] = latest
        if revision in (0, latest.revision):
            return latest
        return await self.get_workflow(workflow_id, revision)

    async def list_workflows(
        self, *, after: int, limit: int, tags: Sequence[str], state: WorkflowState | None
    ) -> Page[Workflow]:
        """Lists workflows (latest revisions) having all `tags`, in `state` if given."""
        where = Filter({"state": state.value} if state else {}, {"tags": tags})
        return await self._list(WORKFLOW, after, limit, where)

    async def update_workflow(
        self, patch: Workflow, fields: set[str], etag: str, request: RequestInfo
    ) -> Workflow:
        """Replaces `fields` of workflow `patch.id` and stores the result as a new revision."""
        await _precheck(lambda: validate_workflow(patch)[0], fields)

        def mutate(current: Workflow) -> Workflow:
            updated = _merge(current, patch, fields)
            updated.revision = current.revision + 1
            raise_if_invalid(validate_workflow(updated)[0])
            self._check_size(WORKFLOW, updated)
            return updated

        return await self._update(
            WORKFLOW,
            patch.id,
            mutate,
            etag,
            request,
            self._check_workflow_agents,
            self._store_revision,
        )

    async def delete_workflow(self, workflow_id: str, etag: str, request: RequestInfo) -> None:
        """Deletes a workflow with all its revisions; refused while executions of it run."""

        async def before(conn: SqlConnection) -> list[tuple[Kind[Any], str]]:
            schedules = await self.repo.list_page(
                conn, SCHEDULES, after_seq=0, limit=5, where=Filter({"workflow": workflow_id}, {})
            )
            tools = await self.repo.tools_running(conn, f"workflows/{workflow_id}")
            if schedules or tools:
                names = ", ".join(
                    [f"schedules/{s.id}" for s in schedules] + [f"tools/{t}" for t in tools]
                )
                raise BatonError(
                    Code.FAILED_PRECONDITION,
                    "WORKFLOW_IN_USE",
                    f"workflow {workflow_id!r} is started by {names}; delete those first",
                    metadata={"name": f"workflows/{workflow_id}", "usedBy": names},
                )
            if self.workflow_in_use is not None and await self.workflow_in_use(conn, workflow_id):
                raise BatonError(
                    Code.FAILED_PRECONDITION,
                    "WORKFLOW_IN_USE",
                    f"workflow {workflow_id!r} has executions that have not ended; cancel "
                    "them or wait for them first",
                    metadata={"name": f"workflows/{workflow_id}"},
                )
            return []

        await self._delete(WORKFLOW, workflow_id, etag, request, before)

    async def _check_workflow_agents(self, conn: SqlConnection, workflow: Workflow) -> None:
        found = await self.repo.get_many(conn, AGENTS, workflow.agent_ids())
        violations = []
        for i, step in enumerate(workflow.steps):
            refs = [(f"workflow.steps[{i}].agent", step.agent)] if step.agent else []
            refs += [
                (f"workflow.steps[{i}].fallback_agents[{k}]", a)
                for k, a in enumerate(step.fallback_agents)
            ]
            violations += [
                FieldViolation(field, f"agent 'agents/{agent}' does not exist", "UNKNOWN_AGENT")
                for field, agent in refs
                if agent not in found
            ]
        children = {s.workflow for s in workflow.steps if s.workflow and s.workflow != workflow.id}
        known = await self.repo.get_many(conn, WORKFLOWS, sorted(children))
        violations += [
            FieldViolation(
                f"workflow.steps[{i}].workflow",
                f"workflow 'workflows/{step.workflow}' does not exist",
                "UNKNOWN_WORKFLOW",
            )
            for i, step in enumerate(workflow.steps)
            if step.workflow in children and step.workflow not in known
        ]
        raise_if_invalid(violations)

    async def _store_revision(self, conn: SqlConnection, seq: int, workflow: Workflow) -> None:
        await self.repo.insert_revision(conn, seq, workflow.revision, workflow.to_doc())

    # Handoffs -------------------------------------------------------------------------

    async def create_handoff(self, handoff: Handoff, request: RequestInfo) -> Handoff:
        """Stores a new handoff between two existing agents."""
        await self._checked(HANDOFF, handoff, lambda: validate_handoff(handoff))
        return await self._create(HANDOFF, handoff, request, self._check_handoff_agents)

    async def get_handoff(self, handoff_id: str) -> Handoff:
        """Returns a handoff or raises HANDOFF_NOT_FOUND."""
        return await self._get(HANDOFF, handoff_id)

    async def list_handoffs(
        self,
        *,
        after: int,
        limit: int,
        source_agent: str,
        target_agent: str,
        type_: HandoffType | None,
    ) -> Page[Handoff]:
        """Lists handoffs, filtered by source, target and type when given."""
        equals = {
            column: value
            for column, value in (
                ("source", source_agent),
                ("target", target_agent),
                ("type", type_.value if type_ else ""),
            )
            if value
        }
        return await self._list(HANDOFF, after, limit, Filter(equals, {}))

    async def update_handoff(
        self, patch: Handoff, fields: set[str], etag: str, request: RequestInfo
    ) -> Handoff:
        """Replaces `fields` of handoff `patch.id`."""
        await _precheck(lambda: validate_handoff(patch), fields)

        def mutate(current: Handoff) -> Handoff:
            updated = _merge(current, patch, fields)
            raise_if_invalid(validate_handoff(updated))
            self._check_size(HANDOFF, updated)
            return updated

        return await self._update(
            HANDOFF, patch.id, mutate, etag, request, self._check_handoff_agents
        )

    async def delete_handoff(self, handoff_id: str, etag: str, request: RequestInfo) -> None:
        """Deletes a handoff."""
        await self._delete(HANDOFF, handoff_id, etag, request)

    async def _check_handoff_agents(self, conn: SqlConnection, handoff: Handoff) -> None:
        found = await self.repo.get_many(conn, AGENTS, [handoff.source_agent, handoff.target_agent])
        raise_if_invalid(
            [
                FieldViolation(
                    f"handoff.{field}", f"agent 'agents/{agent}' does not exist", "UNKNOWN_AGENT"
                )
                for field, agent in (
                    ("source_agent", handoff.source_agent),
                    ("target_agent", handoff.target_agent),
                )
                if agent not in found
            ]
        )

    # Schedules ------------------------------------------------------------------------

    async def create_schedule(
        self, schedule: Schedule, request: RequestInfo, after_write: AfterWrite[Schedule]
    ) -> Schedule:
        """Stores a new schedule of an existing workflow; `after_write` runs in the same
        transaction (it stores the schedule's first firing)."""
        await self._checked(SCHEDULE, schedule, lambda: validate_schedule(schedule))
        return await self._create(
            SCHEDULE, schedule, request, self._check_schedule_workflow, after_write
        )

    async def get_schedule(self, schedule_id: str) -> Schedule:
        """Returns a schedule or raises SCHEDULE_NOT_FOUND."""
        return await self._get(SCHEDULE, schedule_id)

    async def list_schedules(
        self, *, after: int, limit: int, workflow_id: str, state: ScheduleState | None
    ) -> Page[Schedule]:
        """Lists schedules, of one workflow and in one state when given."""
        equals = {"workflow": workflow_id} if workflow_id else {}
        if state is not None:
            equals["state"] = state.value
        return await self._list(SCHEDULE, after, limit, Filter(equals, {}))

    async def update_schedule(
        self,
        schedule_id: str,
        mutate: Callable[[Schedule], Schedule],
        etag: str,
        request: RequestInfo,
        after_write: AfterWrite[Schedule],
    ) -> Schedule:
        """Replaces schedule `schedule_id` with `mutate(current)`, checked; `after_write`
        runs in the same transaction."""

        def checked(current: Schedule) -> Schedule:
            updated = mutate(current)
            raise_if_invalid(validate_schedule(updated))
            self._check_size(SCHEDULE, updated)
            return updated

        return await self._update(
            SCHEDULE,
            schedule_id,
            checked,
            etag,
            request,
            self._check_schedule_workflow,
            after_write,
        )

    async def delete_schedule(self, schedule_id: str, etag: str, request: RequestInfo) -> None:
        """Deletes a schedule (its firing goes with it); its executions stay."""
        await self._delete(SCHEDULE, schedule_id, etag, request)

    async def _check_schedule_workflow(self, conn: SqlConnection, schedule: Schedule) -> None:
        if await self.repo.get(conn, WORKFLOWS, schedule.workflow_id) is None:
            raise_if_invalid(
                [
                    FieldViolation(
                        "schedule.workflow",
                        f"workflow 'workflows/{schedule.workflow_id}' does not exist",
                        "UNKNOWN_WORKFLOW",
                    )
                ]
            )

    # The shared mechanics -------------------------------------------------------------

    async def _create(
        self,
        kind: Kind[R],
        resource: R,
        request: RequestInfo,
        check: Check[R] | None = None,
        after_write: Callable[[SqlConnection, int, R], Awaitable[None]] | None = None,
    ) -> R:
        async def produce(conn: SqlConnection) -> dict[str, Any]:
            if await self.repo.get(conn, kind.table, resource.id) is not None:
                raise BatonError(
                    Code.ALREADY_EXISTS,
                    f"{kind.name.upper()}_ALREADY_EXISTS",
                    f"{kind.name} {resource.id!r} already exists",
                    metadata={"name": f"{kind.table.name}/{resource.id}"},
                )
            if check is not None:
                await check(conn, resource)
            now = self.clock()
            created = dataclasses.replace(
                resource,
                create_time=now,
                update_time=now,
                version=await self.repo.next_version(conn),
            )
            seq = await self.repo.insert(
                conn,
                kind.table,
                id_=created.id,
                version=created.version,
                doc=created.to_doc(),
                index=kind.index(created),
                multi=kind.multi(created),
            )
            if after_write is not None:
                await after_write(conn, seq, created)
            return created.to_doc()

        doc = await self.db.write(lambda conn: self._once(conn, request, produce))
        result = kind.from_doc(doc)
        await self._cache_put(kind, result.id, result.version, doc)
        return result

    async def _get(self, kind: Kind[R], id_: str) -> R:
        if self.cache is not None:
            hit = await self.cache.get(kind.name, id_)
            if hit is not None:
                if hit.doc is None:
                    raise not_found(kind.name, f"{kind.table.name}/{id_}")
                return kind.from_doc(hit.doc)
        row = await self.db.read(lambda conn: self.repo.get(conn, kind.table, id_))
        if row is None:
            raise not_found(kind.name, f"{kind.table.name}/{id_}")
        await self._cache_put(kind, id_, row.version, row.doc)
        return kind.from_doc(row.doc)

    async def _list(self, kind: Kind[R], after: int, limit: int, where: Filter) -> Page[R]:
        rows = await self.db.read(
            lambda conn: self.repo.list_page(
                conn, kind.table, after_seq=after, limit=limit + 1, where=where
            )
        )
        page = Page.of(rows, limit, lambda row: row.seq)
        return Page([kind.from_doc(r.doc) for r in page.items], page.cursors, page.more)

    async def _update(
        self,
        kind: Kind[R],
        id_: str,
        mutate: Callable[[R], R],
        etag: str,
        request: RequestInfo,
        check: Check[R] | None = None,
        after_write: Callable[[SqlConnection, int, R], Awaitable[None]] | None = None,
    ) -> R:
        async def produce(conn: SqlConnection) -> dict[str, Any]:
            row = await self.repo.get(conn, kind.table, id_)
            if row is None:
                raise not_found(kind.name, f"{kind.table.name}/{id_}")
            current = kind.from_doc(row.doc)
            _check_etag(kind, current, etag)
            updated = mutate(current)
            if check is not None:
                await check(conn, updated)
            updated = dataclasses.replace(
                updated,
                id=id_,
                create_time=current.create_time,
                update_time=self.clock(),
                version=await self.repo.next_version(conn),
            )
            await self.repo.update(
                conn,
                kind.table,
                seq=row.seq,
                version=updated.version,
                doc=updated.to_doc(),
                index=kind.index(updated),
                multi=kind.multi(updated),
            )
            if after_write is not None:
                await after_write(conn, row.seq, updated)
            return updated.to_doc()

        doc = await self.db.write(lambda conn: self._once(conn, request, produce))
        result = kind.from_doc(doc)
        await self._cache_put(kind, result.id, result.version, doc)
        return result

    async def _delete(
        self,
        kind: Kind[R],
        id_: str,
        etag: str,
        request: RequestInfo,
        before: Callable[[SqlConnection], Awaitable[list[tuple[Kind[Any], str]]]] | None = None,
    ) -> None:
        tombstones: list[tuple[Kind[Any], str]] = []
        stamp = 0

        async def produce(conn: SqlConnection) -> None:
            nonlocal stamp
            row = await self.repo.get(conn, kind.table, id_)
            if row is None:
                raise not_found(kind.name, f"{kind.table.name}/{id_}")
            _check_etag(kind, kind.from_doc(row.doc), etag)
            if before is not None:
                tombstones.extend(await before(conn))
            await self.repo.delete(conn, kind.table, row.seq)
            tombstones.append((kind, id_))
            stamp = await self.repo.next_version(conn)
            return None

        await self.db.write(lambda conn: self._once(conn, request, produce))
        for dead_kind, dead_id in tombstones:
            await self._cache_put(dead_kind, dead_id, stamp, None)

    async def _once(
        self,
        conn: SqlConnection,
        request: RequestInfo,
        produce: Callable[[SqlConnection], Awaitable[Any]],
    ) -> Any:
        return await once(conn, self.idempotency, request, produce, self.clock())

    async def purge_request_ids(self, older_than: float) -> int:
        """Forgets request ids answered more than `older_than` seconds ago."""
        before = self.clock() - older_than
        return await self.db.write(lambda conn: self.idempotency.purge(conn, before))

    async def _cache_put(
        self, kind: Kind[Any], id_: str, version: int, doc: dict[str, Any] | None
    ) -> None:
        if self.cache is not None:
            await self.cache.put(kind.name, id_, version, doc)


async def _precheck(check: Callable[[], list[FieldViolation]], fields: set[str]) -> None:
    """Checks an update's patch off the event loop and outside the write transaction,
    keeping the violations of the fields it replaces: the costly parts (conditions,
    schemas, big step lists) are refused or compiled (and cached) here, so the check of the
    merged result inside the transaction is cheap."""
    violations = await asyncio.to_thread(check)
    # A violation's field is `<resource>.<top-level field>...`, e.g. `workflow.steps[2].id`.
    raise_if_invalid([v for v in violations if v.field.split(".")[1].split("[")[0] in fields])


def _check_etag(kind: Kind[Any], current: Resource, etag: str) -> None:
    if etag and etag != etag_of(current):
        raise BatonError(
            Code.ABORTED,
            "ETAG_MISMATCH",
            f"{kind.name} {current.id!r} changed since etag {etag!r} was read; read it again",
            metadata={"name": f"{kind.table.name}/{current.id}", "etag": etag_of(current)},
        )


def _merge(current: R, patch: R, fields: set[str]) -> R:
    """`current` with the named fields taken from `patch`."""
    return dataclasses.replace(current, **{f: getattr(patch, f) for f in fields})
