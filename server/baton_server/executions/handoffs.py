"""Where a handoff is chosen: after a success, the one the agent asked for (it must be
declared) or the first SEQUENTIAL one whose conditions hold; after a failure, an ON_FAILURE
one not used yet; within the depth bound. Pure functions over the declared handoffs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from baton_server.domain import failures
from baton_server.domain.definitions import Handoff, HandoffType
from baton_server.domain.events import HandoffRecord
from baton_server.domain.executions import Failure, StepRun
from baton_server.executions.decisions import RefusedError
from baton_server.language.conditions import compile_condition
from baton_server.language.expressions import parse_path
from baton_server.language.mapping import MappingError, lookup


def after_success(
    declared: Sequence[Handoff],
    run: StepRun,
    output: dict[str, Any],
    requested: str,
    execution_input: dict[str, Any],
    max_depth: int,
) -> Handoff | None:
    """The handoff that takes over after the step's agent succeeded with `output` (None: the
    step is done). Raises RefusedError for a request that was not declared, or one handoff
    too many."""
    chosen: Handoff | None
    if requested:
        chosen = next((h for h in declared if h.target_agent == requested), None)
        if chosen is None:
            raise RefusedError(
                Failure(
                    failures.HANDOFF_NOT_ALLOWED,
                    f"agents/{run.agent} asked to hand off to agents/{requested}, "
                    "but no Handoff from it to that agent exists",
                    non_retryable=True,
                )
            )
    else:
        chosen = next(
            (
                h
                for h in declared
                if h.type is HandoffType.SEQUENTIAL and triggered(h, output, execution_input)
            ),
            None,
        )
    if chosen is not None and len(run.handoffs) >= max_depth:
        raise RefusedError(
            Failure(
                failures.HANDOFF_DEPTH_EXCEEDED,
                f"the step was handed off {len(run.handoffs)} times, the most allowed",
                non_retryable=True,
            )
        )
    return chosen


def after_failure(
    declared: Sequence[Handoff], run: StepRun, execution_input: dict[str, Any], max_depth: int
) -> Handoff | None:
    """After the step's agent (and its fallbacks) failed: an ON_FAILURE handoff from it whose
    conditions hold, if the chain is not too long and it was not used yet."""
    if len(run.handoffs) >= max_depth:
        return None
    used = {record.get("handoff") for record in run.handoffs}
    for handoff in declared:
        if (
            handoff.type is HandoffType.ON_FAILURE
            and f"handoffs/{handoff.id}" not in used
            and triggered(handoff, {}, execution_input)
        ):
            return handoff
    return None


def triggered(
    handoff: Handoff, source_output: dict[str, Any], execution_input: dict[str, Any]
) -> bool:
    """True when every trigger condition holds ("completion" always does)."""
    scope = {"source_output": source_output, "input": execution_input}
    for condition in handoff.trigger_conditions:
        if condition.strip() == "completion":
            continue
        try:
            if compile_condition(condition).execute(scope) is not True:
                return False
        except Exception:  # a condition that cannot be evaluated does not hold
            return False
    return True


def target_input(handoff: Handoff, output: dict[str, Any]) -> dict[str, Any]:
    """What the target gets: the source's output, through the handoff's data_mapping."""
    if not handoff.data_mapping:
        return dict(output)
    mapped: dict[str, Any] = {}
    for source_path, target_field in handoff.data_mapping.items():
        try:
            mapped[target_field] = lookup(
                output, parse_path(f"output.{source_path}")[1:], f"output.{source_path}"
            )
        except MappingError as exc:
            raise RefusedError(
                Failure(
                    failures.MAPPING_ERROR,
                    f"handoffs/{handoff.id} data_mapping: {exc}",
                    non_retryable=True,
                )
            ) from None
    return mapped


def record_of(handoff: Handoff, *, requested: bool, now: float) -> HandoffRecord:
    """The HANDOFF event's payload, also kept in the step's list of handoffs."""
    return HandoffRecord(
        handoff=f"handoffs/{handoff.id}",
        source_agent=handoff.source_agent,
        target_agent=handoff.target_agent,
        type=handoff.type.value if handoff.type else "",
        requested_by_agent=requested,
        time=now,
    )
