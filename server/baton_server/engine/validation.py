"""Checks of definitions that need nothing but the definition itself: shapes, ids, the DAG,
expressions and conditions. (Whether referenced agents exist is checked when writing.)

Each check returns every violation found, with the field path as the request spells it,
e.g. `workflow.steps[2].depends_on[0]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import jsonschema

from baton_server.engine import conditions, expressions
from baton_server.engine.ids import STEP_ID, is_resource_id
from baton_server.engine.model import (
    Agent,
    Handoff,
    OpenAIRuntime,
    PythonRuntime,
    RetryPolicy,
    Step,
    WorkerRuntime,
    Workflow,
)
from baton_server.errors import FieldViolation

MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 4096
MAX_LABEL = 63
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
_ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

STEP_CONDITION_VARIABLES = frozenset({"input", "steps", "execution"})
HANDOFF_CONDITION_VARIABLES = frozenset({"source_output", "input"})
COMPLETION = "completion"


def _v(field: str, description: str, reason: str = "INVALID_VALUE") -> FieldViolation:
    return FieldViolation(field, description, reason)


def _check_text(field: str, value: str, limit: int) -> list[FieldViolation]:
    if len(value) > limit:
        return [_v(field, f"is {len(value)} characters long; at most {limit}", "FIELD_TOO_LONG")]
    return []


def _check_words(field: str, values: Iterable[str]) -> list[FieldViolation]:
    return [
        _v(f"{field}[{i}]", f"must be 1-{MAX_LABEL} characters")
        for i, value in enumerate(values)
        if not value or len(value) > MAX_LABEL
    ]


def _check_labels(field: str, labels: dict[str, str]) -> list[FieldViolation]:
    found = []
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            found.append(_v(f"{field}.{key}", "label keys are 1-63 of [a-z0-9_.-], from a letter"))
        elif len(value) > MAX_LABEL:
            found.append(_v(f"{field}.{key}", f"label values are at most {MAX_LABEL} characters"))
    return found


def _check_agent_ref(field: str, agent_id: str) -> list[FieldViolation]:
    if not agent_id:
        return [_v(field, "is required", "FIELD_REQUIRED")]
    if not is_resource_id(agent_id):
        return [_v(field, f"{agent_id!r} is not a valid agent name (agents/<id>)")]
    return []


def _check_duration(field: str, seconds: float | None) -> list[FieldViolation]:
    if seconds is not None and seconds <= 0:
        return [_v(field, "must be positive")]
    return []


def validate_agent(agent: Agent) -> list[FieldViolation]:
    """Checks an agent's fields and runtime."""
    found = _check_text("agent.display_name", agent.display_name, MAX_DISPLAY_NAME)
    found += _check_text("agent.description", agent.description, MAX_DESCRIPTION)
    found += _check_words("agent.capabilities", agent.capabilities)
    found += _check_words("agent.tools", agent.tools)
    found += _check_labels("agent.labels", agent.labels)
    if agent.max_concurrency < 0:
        found.append(_v("agent.max_concurrency", "must be 0 (no limit) or more"))
    runtime = agent.runtime
    if runtime is None:
        found.append(
            _v("agent.runtime", "one of python, worker or openai is required", "FIELD_REQUIRED")
        )
    elif isinstance(runtime, PythonRuntime):
        if not _ENTRY_POINT.match(runtime.entry_point):
            found.append(_v("agent.python.entry_point", "must look like 'package.module:function'"))
    elif isinstance(runtime, WorkerRuntime):
        found += _check_duration("agent.worker.heartbeat_timeout", runtime.heartbeat_timeout)
        found += _check_duration("agent.worker.schedule_timeout", runtime.schedule_timeout)
    elif isinstance(runtime, OpenAIRuntime):
        if not re.match(r"^https?://[^\s/]+", runtime.base_url):
            found.append(_v("agent.openai.base_url", "must be an http(s) URL"))
        if not runtime.model:
            found.append(_v("agent.openai.model", "is required", "FIELD_REQUIRED"))
        if runtime.api_key_env and not _ENV_NAME.match(runtime.api_key_env):
            found.append(_v("agent.openai.api_key_env", "must be an environment variable name"))
        if runtime.temperature is not None and not 0 <= runtime.temperature <= 2:
            found.append(_v("agent.openai.temperature", "must be within [0, 2]"))
    return found


def _check_retry_policy(field: str, policy: RetryPolicy) -> list[FieldViolation]:
    found = []
    if policy.max_attempts < 0:
        found.append(_v(f"{field}.max_attempts", "must be 0 (default) or more"))
    if policy.backoff_coefficient and policy.backoff_coefficient < 1:
        found.append(_v(f"{field}.backoff_coefficient", "must be at least 1"))
    if not 0 <= policy.jitter <= 1:
        found.append(_v(f"{field}.jitter", "must be within [0, 1]"))
    for name in ("initial_interval", "maximum_interval"):
        value = getattr(policy, name)
        if value is not None and value < 0:
            found.append(_v(f"{field}.{name}", "must not be negative"))
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
    found += _check_words("workflow.tags", workflow.tags)
    if workflow.input_schema is not None:
        try:
            jsonschema.validators.validator_for(workflow.input_schema).check_schema(
                workflow.input_schema
            )
        except jsonschema.SchemaError as exc:
            found.append(_v("workflow.input_schema", f"is not a valid JSON Schema: {exc.message}"))
    if not workflow.steps:
        found.append(_v("workflow.steps", "a workflow needs at least one step", "FIELD_REQUIRED"))
        return found, []

    index: dict[str, int] = {}
    for i, step in enumerate(workflow.steps):
        field = f"workflow.steps[{i}]"
        if not STEP_ID.match(step.id):
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

    for i, step in enumerate(workflow.steps):
        for j, dep in enumerate(step.depends_on):
            if dep not in index:
                found.append(
                    _v(
                        f"workflow.steps[{i}].depends_on[{j}]",
                        f"no step has id {dep!r}",
                        "UNKNOWN_STEP",
                    )
                )

    order, cycle = _topological_order(workflow.steps, index)
    if cycle:
        first = index[cycle[0]]
        found.append(
            _v(
                f"workflow.steps[{first}].depends_on",
                "steps depend on each other in a cycle: " + " -> ".join(cycle),
                "WORKFLOW_CYCLE",
            )
        )
        return found, []

    ancestors = _ancestors(workflow.steps, order, index)
    for i, step in enumerate(workflow.steps):
        field = f"workflow.steps[{i}]"
        visible = ancestors.get(step.id, set())
        found += _check_mapping(
            f"{field}.input_mapping",
            step.input_mapping,
            {"input", "steps", "execution"},
            visible,
            index,
        )
        found += _check_mapping(
            f"{field}.output_mapping",
            step.output_mapping,
            {"input", "steps", "execution", "output"},
            visible,
            index,
        )
        if step.when:
            found += _check_condition(
                f"{field}.when", step.when, STEP_CONDITION_VARIABLES, visible, index
            )
    found += _check_mapping(
        "workflow.output_mapping",
        workflow.output_mapping,
        {"input", "steps", "execution"},
        set(index),
        index,
    )
    return found, order


def _check_step_fields(field: str, step: Step) -> list[FieldViolation]:
    found = _check_text(f"{field}.display_name", step.display_name, MAX_DISPLAY_NAME)
    if step.agent and step.capability:
        found.append(_v(f"{field}.capability", "set either agent or capability, not both"))
    elif step.capability:
        found += _check_words(f"{field}.capability", [step.capability])
    else:
        found += _check_agent_ref(f"{field}.agent", step.agent)
    for k, agent in enumerate(step.fallback_agents):
        found += _check_agent_ref(f"{field}.fallback_agents[{k}]", agent)
    found += _check_duration(f"{field}.timeout", step.timeout)
    if step.retry_policy is not None:
        found += _check_retry_policy(f"{field}.retry_policy", step.retry_policy)
    return found


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
    ready = [step_id for step_id in deps if waiting[step_id] == 0]
    order: list[str] = []
    while ready:
        step_id = ready.pop(0)
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


def _ancestors(steps: list[Step], order: list[str], index: dict[str, int]) -> dict[str, set[str]]:
    by_id = {s.id: s for i, s in enumerate(steps) if index.get(s.id) == i}
    result: dict[str, set[str]] = {}
    for step_id in order:
        found: set[str] = set()
        for dep in by_id[step_id].depends_on:
            if dep in index:
                found.add(dep)
                found |= result.get(dep, set())
        result[step_id] = found
    return result


def _check_step_reference(
    field: str, step_id: str, visible: set[str], index: dict[str, int]
) -> list[FieldViolation]:
    if step_id not in index:
        return [_v(field, f"reads step {step_id!r}, which does not exist", "UNKNOWN_STEP")]
    if step_id not in visible:
        return [
            _v(
                field,
                f"reads step {step_id!r}, which is not among the steps it depends on "
                "(directly or transitively)",
                "STEP_NOT_ANCESTOR",
            )
        ]
    return []


def _check_mapping(
    field: str,
    mapping: dict[str, Any] | None,
    roots: set[str],
    visible: set[str],
    index: dict[str, int],
) -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for path, text in expressions.walk_strings(mapping or {}, field):
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
                        f"${{{expr.source}}} cannot be used here (use {allowed})",
                        "INVALID_EXPRESSION",
                    )
                )
            elif expr.step_id is not None:
                found += _check_step_reference(path, expr.step_id, visible, index)
    return found


def _check_condition(
    field: str,
    source: str,
    variables: frozenset[str],
    visible: set[str],
    index: dict[str, int],
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
                f"reads unknown variable(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(variables))})",
                "INVALID_CONDITION",
            )
        ]
    found: list[FieldViolation] = []
    for step_id in sorted(conditions.referenced_steps(source)):
        found += _check_step_reference(field, step_id, visible, index)
    return found


def validate_handoff(handoff: Handoff) -> list[FieldViolation]:
    """Checks a handoff's agents, type, trigger conditions and data mapping."""
    found = _check_agent_ref("handoff.source_agent", handoff.source_agent)
    found += _check_agent_ref("handoff.target_agent", handoff.target_agent)
    if handoff.source_agent and handoff.source_agent == handoff.target_agent:
        found.append(_v("handoff.target_agent", "must differ from source_agent"))
    if handoff.type is None:
        found.append(_v("handoff.type", "SEQUENTIAL or ON_FAILURE is required", "FIELD_REQUIRED"))
    found += _check_text("handoff.description", handoff.description, MAX_DESCRIPTION)
    for i, condition in enumerate(handoff.trigger_conditions):
        if condition.strip() == COMPLETION:
            continue
        found += _check_condition(
            f"handoff.trigger_conditions[{i}]", condition, HANDOFF_CONDITION_VARIABLES, set(), {}
        )
    for source_path, target_field in handoff.data_mapping.items():
        try:
            expressions.parse_path(f"output.{source_path}")
        except expressions.ExpressionError:
            found.append(
                _v(
                    f"handoff.data_mapping.{source_path}",
                    "keys are dotted paths into the source output, e.g. plan.items",
                    "INVALID_EXPRESSION",
                )
            )
        if not _FIELD_NAME.match(target_field):
            found.append(
                _v(f"handoff.data_mapping.{source_path}", "values are target input field names")
            )
    return found
