"""A workflow revision prepared for running: dependency graph, compiled conditions, retry
policies and input schema, built once per revision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cel

from baton_server.domain.definitions import Step, Workflow
from baton_server.domain.retry import Backoff
from baton_server.language.conditions import compile_condition
from baton_server.language.input_schema import InputSchema


@dataclass(frozen=True)
class Plan:
    """What the engine needs to know about a workflow revision."""

    workflow: Workflow
    steps: dict[str, Step]
    conditions: dict[str, cel.Program]
    signal_conditions: dict[str, cel.Program]
    """The `wait_for.when` conditions, by step."""
    backoffs: dict[str, Backoff]
    sinks: tuple[str, ...]
    dependents: dict[str, tuple[str, ...]]
    """The steps that depend on each step: the ones to look at when it ends."""
    positions: dict[str, int]
    input_schema: InputSchema | None
    loop_conditions: dict[str, cel.Program]
    """The `loop.until` conditions, by the loop's last step."""
    loop_bodies: dict[str, tuple[str, ...]]
    """The steps of each loop's body, in declaration order, by the loop's last step."""
    loop_of: dict[str, str]
    """For each step in a loop's body, the loop's last step."""
    output_schemas: dict[str, InputSchema]
    """The `output_schema`s, by step, ready to apply."""

    def check_input(self, value: dict[str, Any]) -> list[str]:
        """Where `value` does not satisfy the input schema ([] when it does or there is
        none). Blocking, within a time budget: run it in a thread."""
        return [] if self.input_schema is None else self.input_schema.problems(value)


def build_plan(workflow: Workflow) -> Plan:
    """Prepares a (validated) workflow revision."""
    steps = {s.id: s for s in workflow.steps}
    dependents: dict[str, list[str]] = {s.id: [] for s in workflow.steps}
    for step in workflow.steps:
        for dep in dict.fromkeys(step.depends_on):
            dependents[dep].append(step.id)
    bodies = {
        s.id: loop_body(workflow.steps, s.id, s.loop.start or s.id)
        for s in workflow.steps
        if s.loop is not None
    }
    return Plan(
        workflow=workflow,
        steps=steps,
        conditions={s.id: compile_condition(s.when) for s in workflow.steps if s.when},
        signal_conditions={
            s.id: compile_condition(s.wait_for.when)
            for s in workflow.steps
            if s.wait_for is not None and s.wait_for.when
        },
        backoffs={s.id: Backoff.from_policy(s.retry_policy) for s in workflow.steps},
        sinks=tuple(s.id for s in workflow.steps if not dependents[s.id]),
        dependents={k: tuple(v) for k, v in dependents.items()},
        positions={s.id: i for i, s in enumerate(workflow.steps)},
        input_schema=None if workflow.input_schema is None else InputSchema(workflow.input_schema),
        loop_conditions={
            s.id: compile_condition(s.loop.until) for s in workflow.steps if s.loop is not None
        },
        loop_bodies=bodies,
        loop_of={member: end for end, body in bodies.items() for member in body},
        output_schemas={
            s.id: InputSchema(s.output_schema)
            for s in workflow.steps
            if s.output_schema is not None
        },
    )


def loop_body(steps: list[Step], end: str, start: str) -> tuple[str, ...]:
    """The steps on a path from `start` to `end` (both included), in declaration order;
    empty when `start` is not `end` or one of the steps `end` depends on."""
    by_id = {s.id: s for s in steps}
    ancestors: set[str] = set()
    stack = [end]
    while stack:
        current = stack.pop()
        if current in ancestors or current not in by_id:
            continue
        ancestors.add(current)
        stack.extend(by_id[current].depends_on)
    if start not in ancestors:
        return ()
    dependents: dict[str, list[str]] = {s.id: [] for s in steps}
    for step in steps:
        for dep in step.depends_on:
            if dep in dependents:
                dependents[dep].append(step.id)
    body: set[str] = set()
    stack = [start]  # what `start` leads to, among what leads to `end`
    while stack:
        current = stack.pop()
        if current not in body and current in ancestors:
            body.add(current)
            stack.extend(dependents[current])
    return tuple(s.id for s in steps if s.id in body)
