"""Checks of definitions that need nothing but the definition itself (and the agent
policy): shapes, bounds, ids, the DAG, expressions, conditions and input schemas. (Whether
referenced agents exist is checked when writing.)

Each check returns every violation found, with the field path as the request spells it,
e.g. `workflow.steps[2].depends_on[0]`. Every size is bounded (see `limits`) before any
parser runs, and the DAG checks are near-linear, so a check stays cheap whatever it is
given; the callers run it off the event loop all the same.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Sized
from typing import Any

from baton_server.domain.agent_policy import AgentPolicy
from baton_server.domain.definitions import (
    Agent,
    Handoff,
    OpenAIRuntime,
    PythonRuntime,
    RetryPolicy,
    Step,
    WorkerRuntime,
    Workflow,
)
from baton_server.domain.ids import ROLE_NAME, STEP_ID, is_resource_id
from baton_server.domain.schedules import SCHEDULE_LABEL, Schedule
from baton_server.domain.tools import AgentTool, HttpTool, Tool, WorkflowTool
from baton_server.errors import FieldViolation
from baton_server.language import calendars, conditions, expressions
from baton_server.language.input_schema import schema_violations
from baton_server.language.plan import loop_body
from baton_server.limits import (
    MAX_DEPENDENCIES,
    MAX_DESCRIPTION,
    MAX_DISPLAY_NAME,
    MAX_ENTRY_POINT,
    MAX_ERROR_TYPE,
    MAX_EXPRESSION_CHARS,
    MAX_FALLBACK_AGENTS,
    MAX_INSTRUCTIONS,
    MAX_LIST_ITEMS,
    MAX_MODEL,
    MAX_REASON,
    MAX_STEP_DURATION_SECONDS,
    MAX_STEPS,
    MAX_TURNS,
    MAX_URL,
    MAX_WORD,
    shorten,
)

MAX_LABEL = MAX_WORD
# Validating patterns are full-matched (`fullmatch`): `$` would let a trailing newline in.
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_.-]{0,62}")
_ENTRY_POINT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")
_BASE_URL = re.compile(r"https?://[^\s/]+(?:/\S*)?")
MAX_BACKOFF_COEFFICIENT = 100.0
MAX_APPROVAL_ROLES = 16
MAX_PROMPT = 1000

STEP_CONDITION_VARIABLES = frozenset({"input", "steps", "execution"})
SIGNAL_CONDITION_VARIABLES = STEP_CONDITION_VARIABLES | {"signal"}
LOOP_CONDITION_VARIABLES = STEP_CONDITION_VARIABLES | {"output", "iteration"}
MAX_ITERATIONS = 10_000
MAX_PARALLEL = 1000
SIGNAL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}")
HANDOFF_CONDITION_VARIABLES = frozenset({"source_output", "input"})
COMPLETION = "completion"


def _v(field: str, description: str, reason: str = "INVALID_VALUE") -> FieldViolation:
    return FieldViolation(field, description, reason)


def _check_text(field: str, value: str, limit: int) -> list[FieldViolation]:
    if len(value) > limit:
        return [_v(field, f"is {len(value)} characters long; at most {limit}", "FIELD_TOO_LONG")]
    return []


def _check_count(field: str, values: Sized, limit: int) -> list[FieldViolation]:
    count = len(values)
    if count > limit:
        return [_v(field, f"has {count} entries; at most {limit}", "TOO_MANY")]
    return []


def check_words(field: str, values: list[str]) -> list[FieldViolation]:
    """Checks a list of words (capabilities, tags, tools): how many, and each one's length."""
    found = _check_count(field, values, MAX_LIST_ITEMS)
    if found:
        return found
    return [
        _v(f"{field}[{i}]", f"must be 1-{MAX_LABEL} characters")
        for i, value in enumerate(values)
        if not value or len(value) > MAX_LABEL
    ]


def check_labels(field: str, labels: dict[str, str]) -> list[FieldViolation]:
    """Checks a map of labels: how many, the keys' shape and the values' length."""
    found = _check_count(field, labels, MAX_LIST_ITEMS)
    if found:
        return found
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            found.append(
                _v(
                    f"{field}.{shorten(key)}",
                    "label keys are 1-63 of [a-z0-9_.-], from a letter",
                )
            )
        elif len(value) > MAX_LABEL:
            found.append(_v(f"{field}.{key}", f"label values are at most {MAX_LABEL} characters"))
    return found


def _check_agent_ref(field: str, agent_id: str) -> list[FieldViolation]:
    if not agent_id:
        return [_v(field, "is required", "FIELD_REQUIRED")]
    if not is_resource_id(agent_id):
        return [_v(field, f"{shorten(agent_id)!r} is not a valid agent name (agents/<id>)")]
    return []


def _check_duration(field: str, seconds: float | None) -> list[FieldViolation]:
    if seconds is not None and seconds <= 0:
        return [_v(field, "must be positive")]
    return _check_interval(field, seconds)


def _check_interval(field: str, seconds: float | None) -> list[FieldViolation]:
    if seconds is not None and seconds > MAX_STEP_DURATION_SECONDS:
        return [_v(field, f"must be at most {MAX_STEP_DURATION_SECONDS:.0f}s (a year)")]
    return []


def validate_agent(agent: Agent, policy: AgentPolicy) -> list[FieldViolation]:
    """Checks an agent's fields and runtime, and that the runtime stays within `policy`."""
    found = _check_text("agent.display_name", agent.display_name, MAX_DISPLAY_NAME)
    found += _check_text("agent.description", agent.description, MAX_DESCRIPTION)
    found += check_words("agent.capabilities", agent.capabilities)
    found += check_words("agent.tools", agent.tools)
    found += check_labels("agent.labels", agent.labels)
    if agent.max_concurrency < 0:
        found.append(_v("agent.max_concurrency", "must be 0 (no limit) or more"))
    runtime = agent.runtime
    if runtime is None:
        found.append(
            _v("agent.runtime", "one of python, worker or openai is required", "FIELD_REQUIRED")
        )
    elif isinstance(runtime, PythonRuntime):
        field = "agent.python.entry_point"
        if len(runtime.entry_point) > MAX_ENTRY_POINT or not _ENTRY_POINT.fullmatch(
            runtime.entry_point
        ):
            found.append(_v(field, "must look like 'package.module:function'"))
        elif (problem := policy.entry_point_problem(runtime.entry_point)) is not None:
            found.append(_v(field, problem, "ENTRY_POINT_NOT_ALLOWED"))
    elif isinstance(runtime, WorkerRuntime):
        found += _check_duration("agent.worker.heartbeat_timeout", runtime.heartbeat_timeout)
        found += _check_duration("agent.worker.schedule_timeout", runtime.schedule_timeout)
    elif isinstance(runtime, OpenAIRuntime):
        found += _check_openai(runtime, policy)
    return found


def _check_openai(runtime: OpenAIRuntime, policy: AgentPolicy) -> list[FieldViolation]:
    found = []
    if len(runtime.base_url) > MAX_URL or not _BASE_URL.fullmatch(runtime.base_url):
        found.append(_v("agent.openai.base_url", "must be an http(s) URL"))
    elif (problem := policy.endpoint_problem(runtime.base_url)) is not None:
        found.append(_v("agent.openai.base_url", problem, "ENDPOINT_NOT_ALLOWED"))
    if not runtime.model:
        found.append(_v("agent.openai.model", "is required", "FIELD_REQUIRED"))
    found += _check_text("agent.openai.model", runtime.model, MAX_MODEL)
    found += _check_text("agent.openai.instructions", runtime.instructions, MAX_INSTRUCTIONS)
    if runtime.api_key_env:
        if not _ENV_NAME.fullmatch(runtime.api_key_env):
            found.append(_v("agent.openai.api_key_env", "must be an environment variable name"))
        elif (problem := policy.secret_problem(runtime.api_key_env, runtime.base_url)) is not None:
            found.append(_v("agent.openai.api_key_env", problem, "SECRET_NOT_ALLOWED"))
    if runtime.temperature is not None and not 0 <= runtime.temperature <= 2:
        found.append(_v("agent.openai.temperature", "must be within [0, 2]"))
    if not 0 <= runtime.max_turns <= MAX_TURNS:
        found.append(_v("agent.openai.max_turns", f"must be 0 (10) to {MAX_TURNS}"))
    return found


def _check_retry_policy(field: str, policy: RetryPolicy) -> list[FieldViolation]:
    found = []
    if policy.max_attempts < 0:
        found.append(_v(f"{field}.max_attempts", "must be 0 (default) or more"))
    coefficient = policy.backoff_coefficient
    if coefficient and not 1 <= coefficient <= MAX_BACKOFF_COEFFICIENT:
        found.append(
            _v(f"{field}.backoff_coefficient", f"must be within [1, {MAX_BACKOFF_COEFFICIENT:g}]")
        )
    if not 0 <= policy.jitter <= 1:
        found.append(_v(f"{field}.jitter", "must be within [0, 1]"))
    types = policy.non_retryable_error_types
    found += _check_count(f"{field}.non_retryable_error_types", types, MAX_LIST_ITEMS)
    found += [
        _v(f"{field}.non_retryable_error_types[{i}]", f"must be 1-{MAX_ERROR_TYPE} characters")
        for i, value in enumerate(types[:MAX_LIST_ITEMS])
        if not value or len(value) > MAX_ERROR_TYPE
    ]
    for name in ("initial_interval", "maximum_interval"):
        value = getattr(policy, name)
        if value is not None and value < 0:
            found.append(_v(f"{field}.{name}", "must not be negative"))
        found += _check_interval(f"{field}.{name}", value)
    if (
        policy.initial_interval is not None
        and policy.maximum_interval is not None
        and policy.maximum_interval < policy.initial_interval
    ):
        found.append(_v(f"{field}.maximum_interval", "must be at least initial_interval"))
    return found


def validate_workflow(workflow: Workflow) -> tuple[list[FieldViolation], list[str]]:
    """Checks a workflow; returns its violations and, when it is a DAG, a topological order."""
    found = _check_text("workflow.display_name", workflow.display_name, MAX_DISPLAY_NAME)
    found += _check_text("workflow.description", workflow.description, MAX_DESCRIPTION)
    found += check_words("workflow.tags", workflow.tags)
    if workflow.input_schema is not None:
        found += [
            _v(f"workflow.input_schema{path}", problem)
            for path, problem in schema_violations(workflow.input_schema)
        ]
    if not workflow.steps:
        found.append(_v("workflow.steps", "a workflow needs at least one step", "FIELD_REQUIRED"))
        return found, []
    if len(workflow.steps) > MAX_STEPS:
        found += _check_count("workflow.steps", workflow.steps, MAX_STEPS)
        return found, []

    index: dict[str, int] = {}
    for i, step in enumerate(workflow.steps):
        field = f"workflow.steps[{i}]"
        if not STEP_ID.fullmatch(step.id):
            found.append(
                _v(f"{field}.id", "must be 1-63 of [A-Za-z0-9_-], from a letter", "INVALID_STEP_ID")
            )
        elif step.id in index:
            found.append(
                _v(f"{field}.id", f"step id {step.id!r} is used twice", "DUPLICATE_STEP_ID")
            )
        else:
            index[step.id] = i
        found += _check_step_fields(field, step)
    if any(len(step.depends_on) > MAX_DEPENDENCIES for step in workflow.steps):
        return found, []

    for i, step in enumerate(workflow.steps):
        for j, dep in enumerate(step.depends_on):
            if dep not in index:
                found.append(
                    _v(
                        f"workflow.steps[{i}].depends_on[{j}]",
                        f"no step has id {shorten(dep)!r}",
                        "UNKNOWN_STEP",
                    )
                )

    order, cycle = _topological_order(workflow.steps, index)
    if cycle:
        first = index[cycle[0]]
        found.append(
            _v(
                f"workflow.steps[{first}].depends_on",
                "steps depend on each other in a cycle: " + " -> ".join(cycle[:20]),
                "WORKFLOW_CYCLE",
            )
        )
        return found, []

    loop_violations, in_loops = _check_loops(workflow.steps, index)
    found += loop_violations
    reads: list[_Read] = []
    for i, step in enumerate(workflow.steps):
        field = f"workflow.steps[{i}]"
        looped = {"loop"} if step.id in in_loops else set()
        mapped = {"item", "index"} if step.maps else set()
        roots = {"input", "steps", "execution"} | looped | mapped
        found += _check_mapping(f"{field}.input_mapping", step.input_mapping, roots, step, reads)
        found += _check_mapping(
            f"{field}.output_mapping", step.output_mapping, roots | {"output"}, step, reads
        )
        if step.when:
            found += _check_condition(
                f"{field}.when", step.when, STEP_CONDITION_VARIABLES | looped, step, reads
            )
        if step.loop is not None and step.loop.until:
            found += _check_condition(
                f"{field}.loop.until", step.loop.until, LOOP_CONDITION_VARIABLES, step, reads
            )
        if step.for_each:
            found += _check_mapping(
                f"{field}.for_each",
                step.for_each,  # type: ignore[arg-type]
                {"input", "steps", "execution"},
                step,
                reads,
            )
        if step.sleep_until:
            found += _check_mapping(
                f"{field}.sleep_until",
                step.sleep_until,  # type: ignore[arg-type]
                {"input", "steps", "execution"},
                step,
                reads,
            )
        if step.wait_for is not None and step.wait_for.when:
            found += _check_condition(
                f"{field}.wait_for.when",
                step.wait_for.when,
                SIGNAL_CONDITION_VARIABLES,
                step,
                reads,
            )
    found += _check_mapping(
        "workflow.output_mapping",
        workflow.output_mapping,
        {"input", "steps", "execution"},
        None,
        reads,
    )
    found += _check_reads(workflow.steps, order, index, reads)
    found += _check_iteration_reads(workflow, in_loops)
    return found, order


def _check_step_fields(field: str, step: Step) -> list[FieldViolation]:
    found = _check_text(f"{field}.display_name", step.display_name, MAX_DISPLAY_NAME)
    if step.workflow:
        return found + _check_child_step(field, step)
    if not step.runs_agent:
        return found + _check_waiting_step(field, step)
    if step.agent and step.capability:
        found.append(_v(f"{field}.capability", "set either agent or capability, not both"))
    elif step.capability:
        found += check_words(f"{field}.capability", [step.capability])
    else:
        found += _check_agent_ref(f"{field}.agent", step.agent)
    found += _check_count(f"{field}.depends_on", step.depends_on, MAX_DEPENDENCIES)
    found += _check_count(f"{field}.fallback_agents", step.fallback_agents, MAX_FALLBACK_AGENTS)
    for k, agent in enumerate(step.fallback_agents[:MAX_FALLBACK_AGENTS]):
        found += _check_agent_ref(f"{field}.fallback_agents[{k}]", agent)
    found += _check_duration(f"{field}.timeout", step.timeout)
    if step.retry_policy is not None:
        found += _check_retry_policy(f"{field}.retry_policy", step.retry_policy)
    if step.output_schema is not None:
        found += [
            _v(f"{field}.output_schema{path}", problem)
            for path, problem in schema_violations(step.output_schema)
        ]
    if step.maps:
        if not 0 <= step.max_parallel <= MAX_PARALLEL:
            found.append(_v(f"{field}.max_parallel", f"must be 0 (10) to {MAX_PARALLEL}"))
        for name, used in (
            ("fallback_agents", step.fallback_agents),
            ("loop", step.loop is not None),
        ):
            if used:
                found.append(_v(f"{field}.{name}", "is not used with for_each (yet)"))
    elif step.max_parallel or step.continue_on_error:
        name = "max_parallel" if step.max_parallel else "continue_on_error"
        found.append(_v(f"{field}.{name}", "is used with for_each only"))
    return found


def _check_child_step(field: str, step: Step) -> list[FieldViolation]:
    """A `workflow` step: a workflow id, and what a step with an agent has but fallbacks."""
    found: list[FieldViolation] = []
    if not is_resource_id(step.workflow):
        found.append(_v(f"{field}.workflow", f"{shorten(step.workflow)!r} is not workflows/<id>"))
    for name, used in (
        ("agent", step.agent),
        ("capability", step.capability),
        ("fallback_agents", step.fallback_agents),
        ("wait_for", step.wait_for is not None),
        ("approval", step.approval is not None),
        ("sleep", step.sleep is not None),
        ("sleep_until", step.sleep_until),
        ("for_each", step.for_each),
    ):
        if used:
            found.append(_v(f"{field}.{name}", "is not used by a workflow step"))
    found += _check_count(f"{field}.depends_on", step.depends_on, MAX_DEPENDENCIES)
    found += _check_duration(f"{field}.timeout", step.timeout)
    if step.retry_policy is not None:
        found += _check_retry_policy(f"{field}.retry_policy", step.retry_policy)
    return found


def _check_waiting_step(field: str, step: Step) -> list[FieldViolation]:
    """A step without an agent (`wait_for`, `approval`, `sleep`, `sleep_until`): exactly one
    of those, a signal name or approving roles, durations in range, and none of what only
    steps with an agent use."""
    found: list[FieldViolation] = []
    targets = [
        name
        for name, used in (
            ("wait_for", step.wait_for is not None),
            ("approval", step.approval is not None),
            ("sleep", step.sleep is not None),
            ("sleep_until", bool(step.sleep_until)),
        )
        if used
    ]
    kind = targets[0]
    if len(targets) > 1:
        found.append(_v(f"{field}.{targets[1]}", f"set one of {', '.join(targets)}, not both"))
    if step.sleep is not None:
        found += _check_duration(f"{field}.sleep", step.sleep)
    if step.wait_for is not None:
        if not SIGNAL_NAME.fullmatch(step.wait_for.signal):
            found.append(
                _v(f"{field}.wait_for.signal", "must be 1-63 of [A-Za-z0-9_.-], from a letter")
            )
        found += _check_duration(f"{field}.wait_for.timeout", step.wait_for.timeout)
    elif step.approval is not None:
        approval = step.approval
        found += _check_count(f"{field}.approval.roles", approval.roles, MAX_APPROVAL_ROLES)
        for k, role in enumerate(approval.roles[:MAX_APPROVAL_ROLES]):
            if not ROLE_NAME.fullmatch(role):
                found.append(
                    _v(f"{field}.approval.roles[{k}]", "must be 1-32 of [a-z0-9_-], from a letter")
                )
        found += _check_duration(f"{field}.approval.timeout", approval.timeout)
        found += _check_text(f"{field}.approval.prompt", approval.prompt, MAX_PROMPT)
    found += _check_count(f"{field}.depends_on", step.depends_on, MAX_DEPENDENCIES)
    for name, used in (
        ("agent", step.agent),
        ("capability", step.capability),
        ("timeout", step.timeout is not None),
        ("retry_policy", step.retry_policy is not None),
        ("fallback_agents", step.fallback_agents),
        ("input_mapping", step.input_mapping is not None),
        ("output_mapping", step.sleeps and step.output_mapping is not None),
        ("for_each", step.for_each),
    ):
        if used:
            found.append(_v(f"{field}.{name}", f"is not used by a {kind} step (it runs no agent)"))
    return found


def _check_loops(steps: list[Step], index: dict[str, int]) -> tuple[list[FieldViolation], set[str]]:
    """Each loop: its condition and bound, a body from `start` to its step, bodies that
    neither nest nor overlap, and nothing outside a body depending on its inner steps.
    Returns the violations and the steps inside loop bodies."""
    found: list[FieldViolation] = []
    owner: dict[str, str] = {}
    for i, step in enumerate(steps):
        if step.loop is None:
            continue
        field = f"workflow.steps[{i}].loop"
        if not step.loop.until:
            found.append(_v(f"{field}.until", "is required", "FIELD_REQUIRED"))
        if not 1 <= step.loop.max_iterations <= MAX_ITERATIONS:
            found.append(_v(f"{field}.max_iterations", f"must be 1 to {MAX_ITERATIONS}"))
        body = loop_body(steps, step.id, step.loop.start or step.id)
        if not body:
            found.append(
                _v(
                    f"{field}.start",
                    f"{shorten(step.loop.start)!r} is not a step that {step.id!r} depends on",
                )
            )
            continue
        for member in body:
            if member in owner:
                found.append(
                    _v(field, f"step {member!r} is in two loops; loops cannot nest or overlap")
                )
            owner[member] = step.id
    for i, step in enumerate(steps):
        for j, dep in enumerate(step.depends_on):
            end = owner.get(dep)
            if end is not None and dep != end and owner.get(step.id) != end:
                found.append(
                    _v(
                        f"workflow.steps[{i}].depends_on[{j}]",
                        f"{dep!r} is inside the loop ending at {end!r}: depend on {end!r}",
                    )
                )
    return found, set(owner)


def _topological_order(steps: list[Step], index: dict[str, int]) -> tuple[list[str], list[str]]:
    """Kahn's algorithm in declaration order; returns (order, a cycle if there is one)."""
    # Only steps with a valid, first-seen id take part; the others are already reported.
    deps = {
        s.id: [d for d in dict.fromkeys(s.depends_on) if d in index]
        for i, s in enumerate(steps)
        if index.get(s.id) == i
    }
    waiting = {step_id: len(d) for step_id, d in deps.items()}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in deps}
    for step_id, ds in deps.items():
        for d in ds:
            dependents[d].append(step_id)
    ready = collections.deque(step_id for step_id in deps if waiting[step_id] == 0)
    order: list[str] = []
    while ready:
        step_id = ready.popleft()
        order.append(step_id)
        for child in dependents[step_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) == len(deps):
        return order, []
    return order, _find_cycle({s: d for s, d in deps.items() if waiting[s] > 0})


def _find_cycle(deps: dict[str, list[str]]) -> list[str]:
    """Follows unfinished dependencies from any stuck step until one repeats."""
    start = next(iter(deps))
    path: list[str] = [start]
    seen = {start: 0}
    while True:
        nxt = next(d for d in deps[path[-1]] if d in deps)
        if nxt in seen:
            return [*path[seen[nxt] :], nxt]
        seen[nxt] = len(path)
        path.append(nxt)


_Read = tuple[str, str, str | None]
"""(field, step id read, reading step id or None for the workflow's output_mapping)."""


def _check_reads(
    steps: list[Step], order: list[str], index: dict[str, int], reads: list[_Read]
) -> list[FieldViolation]:
    """Every step an expression reads must exist and, for a step's own expressions, be one
    of its ancestors. Ancestry is computed only for the steps that are read: one bit each,
    OR-ed along the topological order, so the work is O((steps + edges) * read steps / 64)
    rather than a set of ancestors per step."""
    found: list[FieldViolation] = []
    targets = sorted({target for _, target, _ in reads if target in index})
    bit = {target: 1 << k for k, target in enumerate(targets)}
    ancestors: dict[str, int] = {}
    if bit:
        by_id = {s.id: s for i, s in enumerate(steps) if index.get(s.id) == i}
        for step_id in order:
            mask = 0
            for dep in dict.fromkeys(by_id[step_id].depends_on):
                if dep in index:
                    mask |= ancestors[dep] | bit.get(dep, 0)
            ancestors[step_id] = mask
    for field, target, reader in reads:
        if target not in index:
            found.append(
                _v(
                    field,
                    f"reads step {shorten(target)!r}, which does not exist",
                    "UNKNOWN_STEP",
                )
            )
        elif reader is not None and not ancestors.get(reader, 0) & bit[target]:
            found.append(
                _v(
                    field,
                    f"reads step {target!r}, which is not among the steps it depends on "
                    "(directly or transitively)",
                    "STEP_NOT_ANCESTOR",
                )
            )
    return found


def _check_iteration_reads(workflow: Workflow, in_loops: set[str]) -> list[FieldViolation]:
    """`steps.<id>.iterations` exists only for the steps of a loop's body."""
    mappings: list[tuple[str, Any]] = [("workflow.output_mapping", workflow.output_mapping)]
    for i, step in enumerate(workflow.steps):
        mappings.append((f"workflow.steps[{i}].input_mapping", step.input_mapping))
        mappings.append((f"workflow.steps[{i}].output_mapping", step.output_mapping))
    found: list[FieldViolation] = []
    for field, mapping in mappings:
        for path, text in expressions.walk_strings(mapping or {}, field):
            try:
                template = expressions.parse_template(text)
            except expressions.ExpressionError:
                continue  # reported already
            for expr in template.expressions:
                target = expr.step_id
                if target and expr.path[2] == "iterations" and target not in in_loops:
                    found.append(_v(path, f"step {target!r} is in no loop: it has no iterations"))
    return found


def _check_mapping(
    field: str,
    mapping: dict[str, Any] | None,
    roots: set[str],
    reader: Step | None,
    reads: list[_Read],
) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for path, text in expressions.walk_strings(mapping or {}, field):
        if len(text) > MAX_EXPRESSION_CHARS:
            found.append(
                _v(
                    path,
                    f"is {len(text)} characters long; at most {MAX_EXPRESSION_CHARS}",
                    "FIELD_TOO_LONG",
                )
            )
            continue
        try:
            template = expressions.parse_template(text)
        except expressions.ExpressionError as exc:
            found.append(_v(path, str(exc), "INVALID_EXPRESSION"))
            continue
        for expr in template.expressions:
            if expr.root not in roots:
                allowed = ", ".join(sorted(roots))
                found.append(
                    _v(
                        path,
                        f"${{{shorten(expr.source)}}} cannot be used here (use {allowed})",
                        "INVALID_EXPRESSION",
                    )
                )
            elif expr.step_id is not None:
                reads.append((path, expr.step_id, None if reader is None else reader.id))
    return found


def _check_condition(
    field: str,
    source: str,
    variables: frozenset[str],
    reader: Step | None,
    reads: list[_Read],
) -> list[FieldViolation]:
    try:
        free = conditions.free_variables(source)
    except conditions.ConditionError as exc:
        return [_v(field, f"is not valid CEL: {exc}", "INVALID_CONDITION")]
    unknown = sorted(free - variables)
    if unknown:
        return [
            _v(
                field,
                f"reads unknown variable(s) {shorten(', '.join(unknown))} "
                f"(known: {', '.join(sorted(variables))})",
                "INVALID_CONDITION",
            )
        ]
    reads.extend(
        (field, step_id, None if reader is None else reader.id)
        for step_id in sorted(conditions.referenced_steps(source))
    )
    return []


def validate_handoff(handoff: Handoff) -> list[FieldViolation]:
    """Checks a handoff's agents, type, trigger conditions and data mapping."""
    found = _check_agent_ref("handoff.source_agent", handoff.source_agent)
    found += _check_agent_ref("handoff.target_agent", handoff.target_agent)
    if handoff.source_agent and handoff.source_agent == handoff.target_agent:
        found.append(_v("handoff.target_agent", "must differ from source_agent"))
    if handoff.type is None:
        found.append(_v("handoff.type", "SEQUENTIAL or ON_FAILURE is required", "FIELD_REQUIRED"))
    found += _check_text("handoff.description", handoff.description, MAX_DESCRIPTION)
    found += _check_count("handoff.trigger_conditions", handoff.trigger_conditions, MAX_LIST_ITEMS)
    found += _check_count("handoff.data_mapping", handoff.data_mapping, MAX_LIST_ITEMS)
    if found:
        return found
    for i, condition in enumerate(handoff.trigger_conditions):
        if condition.strip() == COMPLETION:
            continue
        found += _check_condition(
            f"handoff.trigger_conditions[{i}]", condition, HANDOFF_CONDITION_VARIABLES, None, []
        )
    for source_path, target_field in handoff.data_mapping.items():
        field = f"handoff.data_mapping.{shorten(source_path)}"
        try:
            if len(source_path) > MAX_EXPRESSION_CHARS:
                raise expressions.ExpressionError("too long")
            expressions.parse_path(f"output.{source_path}")
        except expressions.ExpressionError:
            found.append(
                _v(
                    field,
                    "keys are dotted paths into the source output, e.g. plan.items",
                    "INVALID_EXPRESSION",
                )
            )
        if not _FIELD_NAME.fullmatch(target_field):
            found.append(_v(field, "values are target input field names"))
    return found


MAX_CATCH_UP_LIMIT = 1000


def validate_schedule(schedule: Schedule) -> list[FieldViolation]:
    """Checks a schedule's workflow reference, calendar (cron and time zone, or interval),
    catch-up limit, texts and labels."""
    found = _check_text("schedule.display_name", schedule.display_name, MAX_DISPLAY_NAME)
    found += _check_text("schedule.description", schedule.description, MAX_DESCRIPTION)
    found += _check_text("schedule.pause_reason", schedule.pause_reason, MAX_REASON)
    if not schedule.workflow_id:
        found.append(_v("schedule.workflow", "is required", "FIELD_REQUIRED"))
    elif not is_resource_id(schedule.workflow_id):
        found.append(
            _v("schedule.workflow", f"{shorten(schedule.workflow_id)!r} is not workflows/<id>")
        )
    if schedule.workflow_revision < 0:
        found.append(_v("schedule.workflow_revision", "must be 0 (latest) or a revision"))
    found += check_labels("schedule.labels", schedule.labels)
    if SCHEDULE_LABEL in schedule.labels:
        found.append(_v(f"schedule.labels.{SCHEDULE_LABEL}", "is set by Baton"))
    if not 0 <= schedule.catch_up_limit <= MAX_CATCH_UP_LIMIT:
        found.append(
            _v("schedule.catch_up_limit", f"must be between 0 (default) and {MAX_CATCH_UP_LIMIT}")
        )
    if schedule.cron and schedule.interval is not None:
        found.append(_v("schedule.interval", "set either cron or interval, not both"))
    elif schedule.cron:
        for field, check in (
            ("schedule.cron", lambda: calendars.check_cron(schedule.cron)),
            ("schedule.time_zone", lambda: calendars.time_zone(schedule.time_zone)),
        ):
            try:
                check()
            except calendars.CalendarError as exc:
                found.append(_v(field, str(exc)))
    elif schedule.interval is not None:
        seconds = schedule.interval
        if not calendars.MIN_INTERVAL <= seconds <= calendars.MAX_INTERVAL:
            found.append(_v("schedule.interval", "must be between 1 second and 366 days"))
        elif seconds != int(seconds):
            found.append(_v("schedule.interval", "must be a whole number of seconds"))
        if schedule.time_zone:
            found.append(_v("schedule.time_zone", "is read with cron only"))
    else:
        found.append(_v("schedule.cron", "set cron or interval", "FIELD_REQUIRED"))
    return found


HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_HEADERS = 50


def validate_tool(tool: Tool, policy: AgentPolicy) -> list[FieldViolation]:
    """Checks a tool's description, parameter schema, implementation (within `policy`),
    timeout and retry policy."""
    found = _check_text("tool.description", tool.description, MAX_DESCRIPTION)
    if tool.parameters is not None:
        if tool.parameters.get("type", "object") != "object":
            found.append(_v("tool.parameters.type", "the arguments are an object"))
        found += [
            _v(f"tool.parameters{path}", problem)
            for path, problem in schema_violations(tool.parameters)
        ]
    found += _check_duration("tool.timeout", tool.timeout)
    if tool.retry_policy is not None:
        found += _check_retry_policy("tool.retry_policy", tool.retry_policy)
    implementation = tool.implementation
    if implementation is None:
        found.append(
            _v(
                "tool.implementation",
                "one of python, worker, http, agent or workflow is required",
                "FIELD_REQUIRED",
            )
        )
    elif isinstance(implementation, PythonRuntime):
        field = "tool.python.entry_point"
        entry_point = implementation.entry_point
        if len(entry_point) > MAX_ENTRY_POINT or not _ENTRY_POINT.fullmatch(entry_point):
            found.append(_v(field, "must look like 'package.module:function'"))
        elif (problem := policy.entry_point_problem(entry_point)) is not None:
            found.append(_v(field, problem, "ENTRY_POINT_NOT_ALLOWED"))
    elif isinstance(implementation, WorkerRuntime):
        found += _check_duration("tool.worker.heartbeat_timeout", implementation.heartbeat_timeout)
        found += _check_duration("tool.worker.schedule_timeout", implementation.schedule_timeout)
    elif isinstance(implementation, HttpTool):
        if implementation.method not in HTTP_METHODS:
            found.append(
                _v("tool.http.method", f"must be one of {', '.join(sorted(HTTP_METHODS))}")
            )
        url = implementation.url
        if len(url) > MAX_URL or not _BASE_URL.fullmatch(url):
            found.append(_v("tool.http.url", "must be an http(s) URL"))
        elif (problem := policy.endpoint_problem(url)) is not None:
            found.append(_v("tool.http.url", problem, "ENDPOINT_NOT_ALLOWED"))
        found += _check_count("tool.http.headers", implementation.headers, MAX_HEADERS)
    elif isinstance(implementation, AgentTool):
        found += _check_agent_ref("tool.agent", implementation.agent)
    elif isinstance(implementation, WorkflowTool) and not is_resource_id(implementation.workflow):
        found.append(
            _v("tool.workflow", f"{shorten(implementation.workflow)!r} is not workflows/<id>")
        )
    return found
