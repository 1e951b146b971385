"""The transition function on its own: no server, no storage, no real time. Each case feeds
inputs to `decide` and applies its decisions the way the journal does."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from baton_server.domain import failures
from baton_server.domain.definitions import (
    Agent,
    AgentState,
    Approval,
    Handoff,
    HandoffType,
    Loop,
    RetryPolicy,
    Step,
    WaitFor,
    Workflow,
)
from baton_server.domain.events import payload_of
from baton_server.domain.executions import (
    EventType,
    Execution,
    ExecutionState,
    Failure,
    ItemResult,
    StepRun,
    StepState,
)
from baton_server.executions.decisions import (
    ArmTimer,
    AttemptFailed,
    AttemptSucceeded,
    AwaitSlot,
    Begin,
    CancelRequested,
    Decision,
    Input,
    Limits,
    NotLoaded,
    PauseRequested,
    ResumeRequested,
    RetryRequested,
    RunAttempt,
    RunChild,
    RunState,
    SignalDelivered,
    SlotGranted,
    StepDecided,
    StopAttempt,
    Timer,
    TimerFired,
    TimerKind,
)
from baton_server.executions.transitions import (
    decide,
)
from baton_server.language.plan import build_plan

T0 = 1_000.0


class Directory:
    """Agents and handoffs held in dicts; `missing` ids raise NotLoaded."""

    def __init__(
        self,
        agents: Sequence[Agent] = (),
        handoffs: Sequence[Handoff] = (),
        missing: Sequence[str] = (),
    ) -> None:
        self.agents = {a.id: a for a in agents}
        self.handoffs = list(handoffs)
        self.missing = set(missing)

    def agent(self, agent_id: str) -> Agent | None:
        if agent_id in self.missing:
            raise NotLoaded("agent", agent_id)
        return self.agents.get(agent_id)

    def capable(self, capability: str) -> Agent | None:
        return next((a for a in self.agents.values() if capability in a.capabilities), None)

    def handoffs_from(self, agent_id: str) -> Sequence[Handoff]:
        found = [h for h in self.handoffs if h.source_agent == agent_id]
        return sorted(found, key=lambda h: -h.priority)


class Run:
    """An execution fed input by input; each decision is applied as the journal would."""

    def __init__(
        self,
        steps: Sequence[Step],
        directory: Directory | None = None,
        *,
        input: dict[str, Any] | None = None,
        timeout: float | None = None,
        output_mapping: dict[str, Any] | None = None,
        limits: Limits | None = None,
    ) -> None:
        workflow = Workflow(id="w", revision=1, steps=list(steps), output_mapping=output_mapping)
        self.plan = build_plan(workflow)
        self.execution = Execution(
            id="e1",
            workflow_id="w",
            workflow_revision=1,
            input=input or {},
            timeout=timeout,
            steps=[StepRun(s.id, i) for i, s in enumerate(steps)],
        )
        self.directory = directory or Directory([Agent(id="a"), Agent(id="b"), Agent(id="c")])
        self.limits = limits or Limits()
        self.draining = False
        self.now = T0
        self.last = Decision()
        self.values: dict[tuple[str, int, int], list[Any]] = {}
        self.items: dict[str, dict[int, Any]] = {}
        self.sizes: dict[tuple[str, int], int] = {}  # kept across inputs, as the driver does

    def feed(self, event: Input, at: float | None = None) -> Decision:
        if at is not None:
            self.now = at
        state = RunState(self.execution, self.plan, self.limits, self.draining)
        state.values = self.values
        state.items = self.items
        state.sizes = self.sizes
        decision = decide(state, event, self.now, self.directory)
        for position in decision.cleared:
            self.items[self.plan.workflow.steps[position].id] = {}
        for item in decision.items:  # as the driver does: only what it holds already
            if item.step_id in self.items:
                self.items[item.step_id][item.index] = item
        for name, value in decision.fields.items():
            setattr(self.execution, name, value)
        for position, run in decision.steps.items():
            self.execution.steps[position] = run
        self.last = decision
        return decision

    def step(self, step_id: str) -> StepRun:
        return self.execution.step(step_id)

    def succeed(
        self,
        step_id: str,
        output: dict[str, Any] | None = None,
        at: float | None = None,
        **kw: Any,
    ) -> Decision:
        output = {"v": step_id} if output is None else output
        run = self.step(step_id)
        event = AttemptSucceeded(step_id, run.attempt, output, len(str(output)), **kw)
        return self.feed(event, at)

    def fail(
        self,
        step_id: str,
        type_: str = "Boom",
        *,
        non_retryable: bool = False,
        retry_after: float | None = None,
    ) -> Decision:
        run = self.step(step_id)
        failure = Failure(type_, "it broke", non_retryable=non_retryable)
        return self.feed(AttemptFailed(step_id, run.attempt, failure, retry_after))

    @property
    def state(self) -> ExecutionState:
        return self.execution.state

    def last_input(self, step_id: str) -> dict[str, Any]:
        """The input of the last attempt the last decision started for `step_id`."""
        runs = [c for c in self.last.commands if isinstance(c, RunAttempt)]
        return next(c.input for c in reversed(runs) if c.step_id == step_id)


def started(decision: Decision) -> list[tuple[str, int, str]]:
    """(step, attempt, agent) of the attempts a decision starts."""
    return [
        (c.step_id, c.attempt, c.agent.id) for c in decision.commands if isinstance(c, RunAttempt)
    ]


def kinds(decision: Decision) -> list[str]:
    return [f"{e.type.value}:{e.step_id}" if e.step_id else e.type.value for e in decision.events]


def timers(decision: Decision) -> dict[Timer, float]:
    return {c.timer: c.at for c in decision.commands if isinstance(c, ArmTimer)}


def no_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=1)


# DAG readiness, conditions and skips ------------------------------------------------------


def test_dag_readiness_fan_out_and_fan_in() -> None:
    run = Run(
        [
            Step(id="s1", agent="a"),
            Step(id="s2", agent="a", depends_on=["s1"]),
            Step(id="s3", agent="b", depends_on=["s1"]),
            Step(id="s4", agent="c", depends_on=["s2", "s3"]),
        ]
    )
    first = run.feed(Begin())
    assert run.state is ExecutionState.RUNNING
    assert kinds(first) == ["EXECUTION_STARTED", "STEP_SCHEDULED:s1", "STEP_STARTED:s1"]
    assert started(first) == [("s1", 1, "a")]
    assert started(run.succeed("s1")) == [("s2", 1, "a"), ("s3", 1, "b")]
    assert started(run.succeed("s3")) == []  # s4 still waits for s2
    assert run.step("s4").state is StepState.PENDING
    assert started(run.succeed("s2")) == [("s4", 1, "c")]
    last = run.succeed("s4", {"done": True})
    assert run.state is ExecutionState.SUCCEEDED
    assert run.execution.output == {"s4": {"done": True}}
    assert kinds(last)[-1] == "EXECUTION_SUCCEEDED"


def test_a_false_condition_skips_and_the_skip_propagates() -> None:
    run = Run(
        [
            Step(id="s1", agent="a", when="input.go"),
            Step(id="s2", agent="a", depends_on=["s1"]),
            Step(id="s3", agent="a"),
        ],
        input={"go": False},
    )
    decision = run.feed(Begin())
    assert run.step("s1").state is StepState.SKIPPED
    assert run.step("s2").state is StepState.SKIPPED
    assert [payload_of(e).reason for e in decision.events if e.type is EventType.STEP_SKIPPED] == [  # type: ignore[attr-defined]
        "condition is false",
        "dependency 's1' was skipped",
    ]
    assert started(decision) == [("s3", 1, "a")]
    run.succeed("s3")
    assert run.state is ExecutionState.SUCCEEDED
    assert run.execution.output == {"s3": {"v": "s3"}}  # skipped sinks give no output


def test_a_skipped_branch_joining_skips_the_join_once_the_other_branch_ends() -> None:
    run = Run(
        [
            Step(id="root", agent="a"),
            Step(id="left", agent="a", depends_on=["root"], when="false"),
            Step(id="right", agent="a", depends_on=["root"]),
            Step(id="join", agent="a", depends_on=["left", "right"]),
        ]
    )
    run.feed(Begin())
    run.succeed("root")
    assert run.step("left").state is StepState.SKIPPED
    assert run.step("join").state is StepState.PENDING  # right still runs
    run.succeed("right")
    assert run.step("join").state is StepState.SKIPPED
    assert run.state is ExecutionState.SUCCEEDED


@pytest.mark.parametrize(
    ("step", "failure_type"),
    [
        (Step(id="s", agent="a", when="input.missing.x > 1"), failures.CONDITION_ERROR),
        (Step(id="s", agent="a", when="1 + 1"), failures.CONDITION_ERROR),
        (Step(id="s", agent="a", input_mapping={"x": "${input.nope}"}), failures.MAPPING_ERROR),
    ],
)
def test_a_step_that_cannot_be_prepared_fails_the_execution(step: Step, failure_type: str) -> None:
    run = Run([step, Step(id="other", agent="a")])
    decision = run.feed(Begin())
    assert run.step("s").state is StepState.FAILED
    assert run.step("s").error.type == failure_type  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED
    assert run.execution.error.type == failure_type  # type: ignore[union-attr]
    assert started(decision) == []  # nothing starts once the execution failed
    assert run.step("other").state is StepState.CANCELLED


def test_the_mapped_input_is_what_the_attempt_gets() -> None:
    run = Run(
        [
            Step(id="s1", agent="a"),
            Step(
                id="s2", agent="a", depends_on=["s1"], input_mapping={"n": "${steps.s1.output.n}"}
            ),
        ],
        input={"q": 1},
    )
    first = run.feed(Begin())
    assert [c.input for c in first.commands if isinstance(c, RunAttempt)] == [{"q": 1}]
    second = run.succeed("s1", {"n": 41})
    assert [c.input for c in second.commands if isinstance(c, RunAttempt)] == [{"n": 41}]


# Retries ---------------------------------------------------------------------------------


def test_retry_delays_back_off_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(
        max_attempts=5, initial_interval=1.0, backoff_coefficient=3.0, maximum_interval=5.0
    )
    run = Run([Step(id="s", agent="a", retry_policy=policy)])
    run.feed(Begin())
    delays = []
    for attempt in range(1, 5):
        decision = run.fail("s")
        assert run.step("s").state is StepState.RETRYING
        retrying = next(e for e in decision.events if e.type is EventType.STEP_RETRYING)
        delays.append(payload_of(retrying).delay)  # type: ignore[attr-defined]
        retry = Timer(TimerKind.RETRY, "s", attempt)
        assert timers(decision) == {retry: run.now + delays[-1]}
        assert started(run.feed(TimerFired(retry), at=run.now + delays[-1])) == [
            ("s", attempt + 1, "a")
        ]
    assert delays == [1.0, 3.0, 5.0, 5.0]
    run.fail("s")  # the fifth attempt fails: no attempts left
    assert run.step("s").state is StepState.FAILED
    assert run.state is ExecutionState.FAILED
    assert run.execution.error.message == "step 's' failed: it broke"  # type: ignore[union-attr]


def test_jitter_comes_from_a_source_seeded_by_the_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, initial_interval=10.0, jitter=0.5)

    def first_delay(execution_id: str) -> float:
        run = Run([Step(id="s", agent="a", retry_policy=policy)])
        run.execution.id = execution_id
        run.feed(Begin())
        decision = run.fail("s")
        return payload_of(decision.events[-1]).delay  # type: ignore[attr-defined, no-any-return]

    assert first_delay("x") == first_delay("x")  # decided again, decided the same
    spread = {first_delay(f"e{i}") for i in range(20)}
    assert len(spread) > 10
    assert all(5.0 <= d <= 15.0 for d in spread)


@pytest.mark.parametrize(
    ("failure_type", "non_retryable", "policy_types", "retried"),
    [
        ("Boom", False, [], True),
        ("Boom", True, [], False),  # the agent said so
        ("Quota", False, ["Quota"], False),  # the policy says so
        ("Quota", False, ["Other"], True),
    ],
)
def test_non_retryable_failures_are_not_retried(
    failure_type: str, non_retryable: bool, policy_types: list[str], retried: bool
) -> None:
    policy = RetryPolicy(max_attempts=3, non_retryable_error_types=policy_types)
    run = Run([Step(id="s", agent="a", retry_policy=policy)])
    run.feed(Begin())
    run.fail("s", failure_type, non_retryable=non_retryable)
    assert run.step("s").state is (StepState.RETRYING if retried else StepState.FAILED)


def test_retry_after_from_the_agent_is_a_lower_bound_on_the_delay() -> None:
    run = Run([Step(id="s", agent="a", retry_policy=RetryPolicy(initial_interval=1.0))])
    run.feed(Begin())
    decision = run.fail("s", retry_after=30.0)
    assert timers(decision) == {Timer(TimerKind.RETRY, "s", 1): T0 + 30.0}
    assert run.step("s").retry_at == T0 + 30.0


def test_a_stale_or_unknown_result_changes_nothing() -> None:
    run = Run([Step(id="s", agent="a", retry_policy=RetryPolicy(initial_interval=1.0))])
    run.feed(Begin())
    run.fail("s")
    assert run.feed(AttemptSucceeded("s", 1, {}, 2)).empty  # attempt 1 already failed
    assert run.feed(TimerFired(Timer(TimerKind.STEP_TIMEOUT, "s", 1))).empty


# Fallbacks and timeouts -------------------------------------------------------------------


def test_fallback_agents_take_over_in_order_once_retries_are_spent() -> None:
    run = Run([Step(id="s", agent="a", fallback_agents=["b", "c"], retry_policy=no_retry())])
    run.feed(Begin())
    decision = run.fail("s")
    assert kinds(decision) == ["FALLBACK_ACTIVATED:s", "STEP_STARTED:s"]
    assert started(decision) == [("s", 2, "b")]
    assert run.step("s").attempts[-1].fallback
    assert started(run.fail("s")) == [("s", 3, "c")]
    run.succeed("s")
    assert run.state is ExecutionState.SUCCEEDED
    assert [a.agent for a in run.step("s").attempts] == ["a", "b", "c"]


def test_fallback_after_a_step_timeout() -> None:
    run = Run(
        [Step(id="s", agent="a", timeout=5.0, fallback_agents=["b"], retry_policy=no_retry())]
    )
    first = run.feed(Begin())
    deadline = Timer(TimerKind.STEP_TIMEOUT, "s", 1)
    assert timers(first) == {deadline: T0 + 5.0}
    decision = run.feed(TimerFired(deadline), at=T0 + 5.0)
    assert StopAttempt("s") in decision.commands
    assert kinds(decision) == ["STEP_TIMED_OUT:s", "FALLBACK_ACTIVATED:s", "STEP_STARTED:s"]
    assert run.step("s").attempts[0].error.type == failures.STEP_TIMEOUT  # type: ignore[union-attr]
    assert started(decision) == [("s", 2, "b")]
    assert run.feed(AttemptSucceeded("s", 1, {}, 2)).empty  # the late first attempt is moot


def test_a_step_timeout_without_retries_times_the_step_out() -> None:
    run = Run([Step(id="s", agent="a", timeout=1.0, retry_policy=no_retry())])
    run.feed(Begin())
    run.feed(TimerFired(Timer(TimerKind.STEP_TIMEOUT, "s", 1)), at=T0 + 1)
    assert run.step("s").state is StepState.TIMED_OUT
    assert run.state is ExecutionState.FAILED
    assert run.execution.error.type == failures.STEP_TIMEOUT  # type: ignore[union-attr]


def test_the_execution_timeout_ends_it_timed_out() -> None:
    run = Run([Step(id="s", agent="a")], timeout=60.0)
    first = run.feed(Begin())
    execution_timer = Timer(TimerKind.EXECUTION_TIMEOUT)
    assert timers(first)[execution_timer] == T0 + 60.0
    run.feed(TimerFired(execution_timer), at=T0 + 60)
    assert run.state is ExecutionState.TIMED_OUT
    assert run.execution.error.type == failures.EXECUTION_TIMED_OUT  # type: ignore[union-attr]
    assert run.step("s").state is StepState.CANCELLED


# Cancellation ----------------------------------------------------------------------------


def test_cancel_during_a_retry_wait() -> None:
    run = Run([Step(id="s", agent="a"), Step(id="t", agent="a", depends_on=["s"])])
    run.feed(Begin())
    run.fail("s")
    assert run.step("s").state is StepState.RETRYING
    decision = run.feed(CancelRequested("enough"))
    assert kinds(decision) == ["EXECUTION_CANCELLED"]
    assert run.state is ExecutionState.CANCELLED
    assert run.execution.error.type == failures.CANCELLED  # type: ignore[union-attr]
    assert {r.state for r in run.execution.steps} == {StepState.CANCELLED}
    assert run.feed(TimerFired(Timer(TimerKind.RETRY, "s", 1))).empty  # the wait is moot
    assert run.feed(CancelRequested("again")).empty


# Handoffs --------------------------------------------------------------------------------


def handoff(source: str, target: str, type_: HandoffType, *conditions: str, **kw: Any) -> Handoff:
    return Handoff(
        id=f"{source}-{target}",
        source_agent=source,
        target_agent=target,
        type=type_,
        trigger_conditions=list(conditions),
        **kw,
    )


def test_a_sequential_handoff_passes_the_output_on_when_its_condition_holds() -> None:
    agents = [Agent(id="a"), Agent(id="b")]
    rule = handoff("a", "b", HandoffType.SEQUENTIAL, "source_output.score < 5")
    run = Run(
        [Step(id="s", agent="a")],
        Directory(agents, [dataclasses.replace(rule, data_mapping={"score": "previous"})]),
    )
    run.feed(Begin())
    decision = run.succeed("s", {"score": 3})
    assert kinds(decision) == ["HANDOFF:s", "STEP_STARTED:s"]
    assert [(c.agent.id, c.input) for c in decision.commands if isinstance(c, RunAttempt)] == [
        ("b", {"previous": 3})
    ]
    assert run.step("s").handoff_input == {"previous": 3}
    run.succeed("s", {"final": 1})
    assert run.execution.output == {"s": {"final": 1}}
    # A score that does not trigger it ends the step with the first agent.
    again = Run([Step(id="s", agent="a")], Directory(agents, [rule]))
    again.feed(Begin())
    again.succeed("s", {"score": 9})
    assert again.state is ExecutionState.SUCCEEDED


def test_a_requested_handoff_must_be_declared() -> None:
    agents = [Agent(id="a"), Agent(id="b"), Agent(id="c")]
    declared = handoff("a", "b", HandoffType.ON_FAILURE)
    run = Run([Step(id="s", agent="a")], Directory(agents, [declared]))
    run.feed(Begin())
    assert started(run.succeed("s", {}, handoff_to="b")) == [("s", 2, "b")]
    assert payload_of(run.last.events[0]).requested_by_agent  # type: ignore[attr-defined]

    undeclared = Run([Step(id="s", agent="a", retry_policy=no_retry())], Directory(agents))
    undeclared.feed(Begin())
    undeclared.succeed("s", {}, handoff_to="c")
    assert undeclared.step("s").error.type == failures.HANDOFF_NOT_ALLOWED  # type: ignore[union-attr]


def test_an_on_failure_handoff_rescues_a_failed_step_once() -> None:
    agents = [Agent(id="a"), Agent(id="b")]
    rescue = handoff("a", "b", HandoffType.ON_FAILURE)
    run = Run(
        [Step(id="s", agent="a", retry_policy=no_retry())],
        Directory(agents, [rescue]),
        input={"q": 1},
    )
    run.feed(Begin())
    decision = run.fail("s")
    assert [(c.agent.id, c.input) for c in decision.commands if isinstance(c, RunAttempt)] == [
        ("b", {"q": 1})
    ]
    run.fail("s")  # the rescuer fails too: the handoff is not used twice
    assert run.step("s").state is StepState.FAILED


def test_handoffs_stop_at_the_depth_bound() -> None:
    agents = [Agent(id="a"), Agent(id="b")]
    loop = [handoff("a", "b", HandoffType.SEQUENTIAL), handoff("b", "a", HandoffType.SEQUENTIAL)]
    run = Run(
        [Step(id="s", agent="a", retry_policy=no_retry())],
        Directory(agents, loop),
        limits=Limits(max_handoff_depth=3),
    )
    run.feed(Begin())
    for _ in range(3):
        run.succeed("s", {})
    run.succeed("s", {})
    assert len(run.step("s").handoffs) == 3
    assert run.step("s").error.type == failures.HANDOFF_DEPTH_EXCEEDED  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED


# Restarts --------------------------------------------------------------------------------


def test_an_attempt_cut_short_by_a_restart_is_redelivered_with_the_same_key() -> None:
    run = Run([Step(id="s", agent="a")])
    run.feed(Begin())
    first_key = run.last.commands[0].idempotency_key  # type: ignore[union-attr]
    decision = run.feed(Begin(), at=T0 + 10)  # the server restarted
    assert [
        (c.attempt, c.idempotency_key) for c in decision.commands if isinstance(c, RunAttempt)
    ] == [(1, first_key)]
    attempts = run.step("s").attempts
    assert [a.attempt for a in attempts] == [1, 1]
    assert attempts[0].error.type == failures.INTERRUPTED  # type: ignore[union-attr]
    assert run.step("s").tries == 1  # the redelivery does not count against the policy
    assert kinds(decision) == ["STEP_INTERRUPTED:s", "STEP_STARTED:s"]  # no EXECUTION_STARTED


def test_a_handoff_target_resumed_after_a_restart_gets_the_handoff_input() -> None:
    agents = [Agent(id="a"), Agent(id="b")]
    run = Run(
        [Step(id="s", agent="a")],
        Directory(agents, [handoff("a", "b", HandoffType.SEQUENTIAL)]),
        input={"q": 1},
    )
    run.feed(Begin())
    run.succeed("s", {"draft": "x"})
    assert run.step("s").agent_index == -1
    decision = run.feed(Begin(), at=T0 + 10)
    assert [
        (c.agent.id, c.attempt, c.input) for c in decision.commands if isinstance(c, RunAttempt)
    ] == [("b", 2, {"draft": "x"})]


def test_a_retry_wait_resumed_after_a_restart_keeps_its_time() -> None:
    run = Run([Step(id="s", agent="a", retry_policy=RetryPolicy(initial_interval=100.0))])
    run.feed(Begin())
    run.fail("s")
    decision = run.feed(Begin(), at=T0 + 30)
    assert timers(decision) == {Timer(TimerKind.RETRY, "s", 1): T0 + 100.0}
    assert started(decision) == []


def test_a_resumed_execution_keeps_its_execution_deadline() -> None:
    run = Run([Step(id="s", agent="a")], timeout=60.0)
    run.feed(Begin())
    decision = run.feed(Begin(), at=T0 + 50)
    assert timers(decision)[Timer(TimerKind.EXECUTION_TIMEOUT)] == T0 + 60.0


# Agents, slots and draining --------------------------------------------------------------


@pytest.mark.parametrize(
    ("directory", "failure_type"),
    [
        (Directory([]), failures.AGENT_NOT_FOUND),
        (Directory([Agent(id="a", state=AgentState.DISABLED)]), failures.AGENT_DISABLED),
    ],
)
def test_an_unusable_agent_fails_the_step(directory: Directory, failure_type: str) -> None:
    run = Run([Step(id="s", agent="a")], directory)
    run.feed(Begin())
    assert run.step("s").error.type == failure_type  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED


def test_a_capability_finds_its_agent_or_fails() -> None:
    run = Run(
        [Step(id="s", capability="summarize")],
        Directory([Agent(id="a"), Agent(id="b", capabilities=["summarize"])]),
    )
    assert started(run.feed(Begin())) == [("s", 1, "b")]
    missing = Run([Step(id="s", capability="translate")])
    missing.feed(Begin())
    assert missing.step("s").error.type == failures.NO_AGENT_FOR_CAPABILITY  # type: ignore[union-attr]


def test_an_agent_with_a_concurrency_limit_waits_for_a_slot() -> None:
    run = Run([Step(id="s", agent="a")], Directory([Agent(id="a", max_concurrency=1)]))
    decision = run.feed(Begin())
    assert [c.step_id for c in decision.commands if isinstance(c, AwaitSlot)] == ["s"]
    assert run.step("s").state is StepState.SCHEDULED
    assert started(run.feed(SlotGranted("s"))) == [("s", 1, "a")]
    assert run.feed(SlotGranted("s")).empty  # a grant for a step that is not waiting


def test_a_draining_server_starts_nothing_new() -> None:
    run = Run([Step(id="s1", agent="a"), Step(id="s2", agent="a", depends_on=["s1"])])
    run.feed(Begin())
    run.draining = True
    decision = run.succeed("s1")
    assert run.step("s1").state is StepState.SUCCEEDED  # finished work is kept
    assert run.step("s2").state is StepState.PENDING  # the next server schedules it
    assert started(decision) == []
    run.draining = False
    assert started(run.feed(Begin())) == [("s2", 1, "a")]


def test_a_lookup_not_at_hand_asks_to_be_loaded() -> None:
    run = Run([Step(id="s", agent="a")], Directory([Agent(id="a")], missing=["a"]))
    with pytest.raises(NotLoaded) as raised:
        run.feed(Begin())
    assert (raised.value.kind, raised.value.key) == ("agent", "a")
    assert run.state is ExecutionState.QUEUED  # nothing was applied


# Output caps -----------------------------------------------------------------------------


def test_an_output_over_the_step_cap_fails_without_retry() -> None:
    run = Run([Step(id="s", agent="a")], limits=Limits(max_output_bytes=100))
    run.feed(Begin())
    run.feed(AttemptSucceeded("s", 1, {"big": "x" * 200}, 211))
    assert run.step("s").error.type == failures.OUTPUT_TOO_LARGE  # type: ignore[union-attr]
    assert run.step("s").state is StepState.FAILED


def test_outputs_that_would_overfill_the_execution_fail_the_step() -> None:
    run = Run(
        [Step(id="s1", agent="a"), Step(id="s2", agent="a")],
        limits=Limits(max_output_bytes=1000, max_execution_bytes=1000),
    )
    run.feed(Begin())
    run.succeed("s1", {"x": "y" * 600})
    run.succeed("s2", {"x": "y" * 600})
    assert run.step("s2").error.type == failures.OUTPUT_TOO_LARGE  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED


def exact_size(run: Run) -> int:
    """What the execution holds, measured in full: input, outputs and loops' past outputs."""
    total = len(orjson.dumps(run.execution.input))
    for step_run in run.execution.steps:
        if step_run.past_outputs:
            total += len(orjson.dumps(step_run.past_outputs))
        if step_run.state is StepState.SUCCEEDED:
            total += len(orjson.dumps(step_run.output or {}))
    return total


@pytest.mark.parametrize("spare", [0, -1])
def test_the_execution_size_bound_is_exact_at_the_limit(spare: int) -> None:
    """Outputs checked one after the other against a bound kept between decisions: the
    execution may reach its limit exactly, and not one byte more."""
    chain = [Step(id=f"s{i}", agent="a", depends_on=[f"s{i - 1}"] if i else []) for i in range(4)]
    outputs = [{"x": "y" * n} for n in (100, 250, 80)]
    held = len(orjson.dumps({})) + sum(len(orjson.dumps(o)) for o in outputs)
    last = {"x": ""}
    final = {"s3": last}  # the workflow's output (its sink's) is kept too
    if spare == 0:  # room for the last output and the workflow's, to the byte
        limit = held + len(orjson.dumps(last)) + len(orjson.dumps(final))
    else:  # one byte short of room for the last output
        limit = held + len(orjson.dumps(last)) + spare
    run = Run(chain, limits=Limits(max_execution_bytes=limit))
    run.feed(Begin())
    for i, output in enumerate(outputs):
        run.succeed(f"s{i}", output, at=T0 + i)
    run.succeed("s3", last)
    if spare == 0:
        assert run.state is ExecutionState.SUCCEEDED
        assert exact_size(run) + len(orjson.dumps(run.execution.output)) == limit
    else:
        assert run.step("s3").error.type == failures.OUTPUT_TOO_LARGE  # type: ignore[union-attr]


def test_a_loops_past_outputs_count_toward_the_execution_size() -> None:
    """A loop's earlier outputs are kept as a list (a byte more each than the outputs):
    the iteration whose output would overfill the execution by one byte fails."""
    step = Step(id="s", agent="a", loop=Loop(until="iteration >= 99", max_iterations=100))
    output = {"x": "y" * 40}
    size = len(orjson.dumps(output))

    def sizes_before_each(limit: int, iterations: int) -> tuple[Run, list[int]]:
        run = Run([step], limits=Limits(max_execution_bytes=limit))
        run.feed(Begin())
        before = []
        for _ in range(iterations):
            if run.state is not ExecutionState.RUNNING:
                break
            before.append(exact_size(run))
            run.feed(AttemptSucceeded("s", run.step("s").attempt, output, size))
        return run, before

    _, measured = sizes_before_each(10**6, 8)
    limit = measured[6] + size - 1  # the 7th output is one byte too many
    run, before = sizes_before_each(limit, 8)
    assert run.step("s").error.type == failures.OUTPUT_TOO_LARGE  # type: ignore[union-attr]
    assert len(before) == 7 and run.step("s").iteration == 6


def test_a_sleeps_output_counts_toward_the_execution_size() -> None:
    """A sleep's output ({woke_at}) is kept without going through the output checks: the
    output after it that would overfill the execution by one byte still fails."""
    steps = [
        Step(id="first", agent="a"),
        Step(id="nap", sleep=5.0, depends_on=["first"]),
        Step(id="after", agent="a", depends_on=["nap"]),
    ]
    output = {"x": "y" * 40}
    size = len(orjson.dumps(output))

    def run_to_after(limit: int) -> tuple[Run, int]:
        run = Run(steps, limits=Limits(max_execution_bytes=limit))
        run.feed(Begin())
        run.feed(AttemptSucceeded("first", 1, output, size))  # the bound is measured here
        run.feed(TimerFired(Timer(TimerKind.WAKE, "nap")), at=T0 + 5)
        held = exact_size(run)
        run.feed(AttemptSucceeded("after", 1, output, size))
        return run, held

    _, held = run_to_after(10**6)
    run, _ = run_to_after(held + size - 1)
    assert run.step("after").error.type == failures.OUTPUT_TOO_LARGE  # type: ignore[union-attr]


def test_an_output_mapping_error_fails_the_execution() -> None:
    run = Run([Step(id="s", agent="a")], output_mapping={"x": "${steps.s.output.nope}"})
    run.feed(Begin())
    run.succeed("s")
    assert run.state is ExecutionState.FAILED
    assert run.execution.error.type == failures.OUTPUT_MAPPING_ERROR  # type: ignore[union-attr]


# Signals ---------------------------------------------------------------------------------


def waiting(step_id: str = "approve", **wait: Any) -> Step:
    return Step(id=step_id, wait_for=WaitFor(signal="approved", **wait), depends_on=["draft"])


def test_a_waiting_step_takes_the_signal_it_waits_for() -> None:
    run = Run([Step(id="draft", agent="a"), waiting()])
    run.feed(Begin())
    decision = run.succeed("draft")
    assert run.step("approve").state is StepState.WAITING
    assert started(decision) == []  # no agent runs
    signalled = run.feed(SignalDelivered("approved", {"by": "ana"}, "r1"))
    assert kinds(signalled)[:2] == ["SIGNAL_RECEIVED", "STEP_SUCCEEDED:approve"]
    assert payload_of(signalled.events[0]).taken_by == "approve"  # type: ignore[attr-defined]
    assert run.state is ExecutionState.SUCCEEDED
    assert run.execution.output == {"approve": {"by": "ana"}}
    assert run.feed(SignalDelivered("approved", {}, "r1")).empty  # the run is over


def test_a_signal_that_comes_first_waits_for_its_step() -> None:
    run = Run([Step(id="draft", agent="a"), waiting()])
    run.feed(Begin())
    early = run.feed(SignalDelivered("approved", {"early": True}))
    assert payload_of(early.events[0]).taken_by == ""  # type: ignore[attr-defined]
    assert run.execution.signals == [{"signal": "approved", "payload": {"early": True}}]
    run.succeed("draft")
    assert run.step("approve").output == {"early": True}
    assert run.execution.signals == []
    assert run.state is ExecutionState.SUCCEEDED


def test_when_picks_the_signals_a_step_takes_and_repeats_deliver_nothing() -> None:
    run = Run([Step(id="draft", agent="a"), waiting(when="signal.ok == true")])
    run.feed(Begin())
    run.succeed("draft")
    run.feed(SignalDelivered("approved", {"ok": False}, "r1"))
    run.feed(SignalDelivered("other", {"ok": True}, "r2"))
    assert run.step("approve").state is StepState.WAITING  # neither matched
    assert [s["signal"] for s in run.execution.signals] == ["approved", "other"]
    assert run.feed(SignalDelivered("approved", {"ok": True}, "r1")).empty  # r1 again
    run.feed(SignalDelivered("approved", {"ok": True}, "r3"))
    assert run.step("approve").output == {"ok": True}
    assert run.execution.signal_requests == ["r1", "r2", "r3"]


def test_a_signal_that_does_not_come_in_time_fails_the_step() -> None:
    run = Run([Step(id="draft", agent="a"), waiting(timeout=60.0)])
    run.feed(Begin())
    decision = run.succeed("draft", at=T0 + 5)
    timer = Timer(TimerKind.WAIT_TIMEOUT, "approve")
    assert timers(decision) == {timer: T0 + 65}
    resumed = run.feed(Begin(), at=T0 + 30)  # a restart keeps the original deadline
    assert timers(resumed)[timer] == T0 + 65
    run.feed(TimerFired(timer), at=T0 + 65)
    assert run.step("approve").error.type == failures.SIGNAL_TIMEOUT  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED


# Approvals -------------------------------------------------------------------------------


def review(**approval: Any) -> list[Step]:
    return [
        Step(id="draft", agent="a"),
        Step(id="review", approval=Approval(**approval), depends_on=["draft"]),
        Step(id="publish", agent="a", depends_on=["review"], when="steps.review.output.approved"),
    ]


def test_an_approval_step_waits_and_an_approval_lets_it_succeed_with_the_decision() -> None:
    run = Run(review())
    run.feed(Begin())
    assert run.feed(StepDecided("review", True, "vic", "reviewer")).empty  # not waiting yet
    decision = run.succeed("draft")
    assert run.step("review").state is StepState.WAITING and started(decision) == []
    assert run.feed(SignalDelivered("review", {})).events[0].step_id == ""  # not a signal step
    decided = run.feed(StepDecided("review", True, "vic", "reviewer", "fine"))
    assert kinds(decided)[:2] == ["APPROVAL_DECIDED:review", "STEP_SUCCEEDED:review"]
    assert run.step("review").output == {
        "approved": True,
        "decided_by": "vic",
        "role": "reviewer",
        "reason": "fine",
    }
    assert started(decided) == [("publish", 1, "a")]
    assert run.feed(StepDecided("review", False, "ann", "admin")).empty  # decided already


def test_a_rejection_fails_the_step_unless_it_continues_on_reject() -> None:
    strict = Run(review())
    strict.feed(Begin())
    strict.succeed("draft")
    strict.feed(StepDecided("review", False, "vic", "operator", "too long"))
    error = strict.step("review").error
    assert error is not None and error.type == failures.APPROVAL_REJECTED
    assert error.message == "rejected by vic (operator): too long"
    assert strict.state is ExecutionState.FAILED

    lenient = Run(review(continue_on_reject=True))
    lenient.feed(Begin())
    lenient.succeed("draft")
    lenient.feed(StepDecided("review", False, "vic", "operator"))
    assert lenient.step("review").output["approved"] is False  # type: ignore[index]
    assert lenient.step("publish").state is StepState.SKIPPED
    assert lenient.state is ExecutionState.SUCCEEDED


def test_an_approval_nobody_gives_times_out_at_its_first_deadline_across_a_restart() -> None:
    run = Run(review(timeout=600.0))
    run.feed(Begin())
    decision = run.succeed("draft", at=T0 + 5)
    timer = Timer(TimerKind.WAIT_TIMEOUT, "review")
    assert timers(decision) == {timer: T0 + 605}
    assert timers(run.feed(Begin(), at=T0 + 100))[timer] == T0 + 605
    run.feed(TimerFired(timer), at=T0 + 605)
    assert run.step("review").error.type == failures.APPROVAL_TIMEOUT  # type: ignore[union-attr]
    assert run.state is ExecutionState.FAILED


# Durable timers --------------------------------------------------------------------------


def test_a_sleep_step_wakes_at_its_time_and_a_restart_keeps_that_time() -> None:
    run = Run([Step(id="nap", sleep=30.0), Step(id="after", agent="a", depends_on=["nap"])])
    decision = run.feed(Begin())
    wake = Timer(TimerKind.WAKE, "nap")
    assert timers(decision) == {wake: T0 + 30} and started(decision) == []
    assert run.step("nap").state is StepState.SLEEPING and run.step("nap").wake_time == T0 + 30
    assert timers(run.feed(Begin(), at=T0 + 10)) == {wake: T0 + 30}  # not restarted
    woke = run.feed(TimerFired(wake), at=T0 + 30)
    assert run.step("nap").output == {"woke_at": "1970-01-01T00:17:10Z"}
    assert started(woke) == [("after", 1, "a")]


def test_sleep_until_reads_a_time_and_a_past_or_bad_one_is_handled() -> None:
    until = Step(id="nap", sleep_until="${input.deadline}")
    later = Run([until], input={"deadline": "1970-01-01T00:20:00Z"})
    assert timers(later.feed(Begin())) == {Timer(TimerKind.WAKE, "nap"): 1200.0}
    past = Run([until], input={"deadline": T0 - 5})
    past.feed(Begin())
    assert past.state is ExecutionState.SUCCEEDED  # a time already past wakes it at once
    bad = Run([until], input={"deadline": "next tuesday"})
    bad.feed(Begin())
    assert bad.step("nap").error.type == failures.SLEEP_UNTIL_ERROR  # type: ignore[union-attr]


def test_a_paused_execution_wakes_its_sleeper_at_the_resume() -> None:
    run = Run([Step(id="nap", sleep=5.0)])
    run.feed(Begin())
    run.feed(PauseRequested())
    assert run.feed(TimerFired(Timer(TimerKind.WAKE, "nap")), at=T0 + 5).empty
    assert run.step("nap").state is StepState.SLEEPING
    run.feed(ResumeRequested(), at=T0 + 9)
    assert run.state is ExecutionState.SUCCEEDED


def test_a_retry_wait_is_kept_across_a_restart() -> None:
    run = Run([Step(id="s", agent="a", retry_policy=RetryPolicy(initial_interval=60.0))])
    run.feed(Begin())
    run.fail("s")
    retry = Timer(TimerKind.RETRY, "s", 1)
    assert timers(run.last)[retry] == T0 + 60
    assert timers(run.feed(Begin(), at=T0 + 20))[retry] == T0 + 60  # neither lost nor restarted


# Loops -----------------------------------------------------------------------------------


def test_a_step_loops_until_its_condition_holds_keeping_each_iteration() -> None:
    loop = Loop(until="output.n >= 3", max_iterations=5)
    run = Run(
        [
            Step(id="count", agent="a", loop=loop, input_mapping={"last": "${loop.last}"}),
            Step(id="after", agent="b", depends_on=["count"]),
        ]
    )
    first = run.feed(Begin())
    assert started(first) == [("count", 1, "a")]
    assert run.last_input("count") == {"last": None}
    again = run.succeed("count", {"n": 1})
    assert kinds(again) == [
        "STEP_SUCCEEDED:count",
        "LOOP_ITERATION_STARTED:count",
        "STEP_SCHEDULED:count",
        "STEP_STARTED:count",
    ]
    assert [e.iteration for e in again.events] == [0, 1, 1, 1]
    assert started(again) == [("count", 2, "a")]  # a new attempt number: a new key
    assert run.last_input("count") == {"last": {"n": 1}}
    run.succeed("count", {"n": 2})
    done = run.succeed("count", {"n": 3})
    assert started(done) == [("after", 1, "b")]
    count = run.step("count")
    assert count.iteration == 2 and count.output == {"n": 3}
    assert count.past_outputs == [{"n": 1}, {"n": 2}]
    restarted = run.feed(Begin(), at=T0 + 1)  # a restart resumes in the iteration it was in
    assert started(restarted) == [("after", 1, "b")]


def test_a_body_of_steps_repeats_and_the_bound_fails_it() -> None:
    loop = Loop(until="output.approved", max_iterations=2, start="write")
    run = Run(
        [
            Step(id="write", agent="a"),
            Step(id="review", agent="b", depends_on=["write"], loop=loop),
            Step(id="publish", agent="a", depends_on=["review"]),
        ]
    )
    run.feed(Begin())
    run.succeed("write", {"draft": 1})
    again = run.succeed("review", {"approved": False})
    assert started(again) == [("write", 2, "a")]
    assert run.step("review").state is StepState.PENDING
    assert run.step("write").past_outputs == [{"draft": 1}]
    run.succeed("write", {"draft": 2})
    run.succeed("review", {"approved": False})
    error = run.step("review").error
    assert error is not None and error.type == failures.MAX_ITERATIONS_EXCEEDED
    assert run.state is ExecutionState.FAILED


def test_a_loop_condition_that_cannot_be_evaluated_fails_the_step() -> None:
    run = Run([Step(id="s", agent="a", loop=Loop(until="output.missing > 1", max_iterations=3))])
    run.feed(Begin())
    run.succeed("s", {"n": 1})
    assert run.step("s").error.type == failures.CONDITION_ERROR  # type: ignore[union-attr]


# Child workflows -------------------------------------------------------------------------


def test_a_workflow_step_runs_a_child_and_a_retry_starts_a_new_one() -> None:
    retries = RetryPolicy(max_attempts=2, initial_interval=1.0)
    run = Run([Step(id="sub", workflow="inner", input_mapping={"x": 1}, retry_policy=retries)])
    first = run.feed(Begin())
    (child,) = [c for c in first.commands if isinstance(c, RunChild)]
    assert (child.workflow_id, child.input, child.attempt) == ("inner", {"x": 1}, 1)
    assert run.step("sub").child == child.child_id
    restarted = run.feed(Begin(), at=T0 + 1)  # the same attempt: the same child, found again
    (again,) = [c for c in restarted.commands if isinstance(c, RunChild)]
    assert again.child_id == child.child_id
    run.fail("sub", "EXECUTION_TIMED_OUT")
    retried = run.feed(TimerFired(Timer(TimerKind.RETRY, "sub", 1)), at=T0 + 5)
    (second,) = [c for c in retried.commands if isinstance(c, RunChild)]
    assert second.attempt == 2 and second.child_id != child.child_id
    run.succeed("sub", {"y": 2})
    assert run.execution.output == {"sub": {"y": 2}}


def test_children_nest_only_so_deep() -> None:
    run = Run([Step(id="sub", workflow="inner")])
    run.execution.depth = 8
    run.feed(Begin())
    assert run.step("sub").error.type == failures.CHILD_DEPTH_EXCEEDED  # type: ignore[union-attr]


# Map over data ---------------------------------------------------------------------------


def items_started(decision: Decision) -> list[tuple[int, int]]:
    """(item, attempt) of the item attempts a decision starts."""
    return [(c.item, c.attempt) for c in decision.commands if isinstance(c, RunAttempt)]


def item_done(run: Run, index: int, output: dict[str, Any], attempt: int = 1) -> Decision:
    return run.feed(AttemptSucceeded("m", attempt, output, 10, item=index))


def test_a_map_runs_items_at_most_max_parallel_at_once_and_keeps_their_order() -> None:
    step = Step(
        id="m",
        agent="a",
        for_each="${input.xs}",
        max_parallel=2,
        input_mapping={"x": "${item}", "i": "${index}"},
    )
    run = Run([step, Step(id="after", agent="b", depends_on=["m"])], input={"xs": [10, 20, 30]})
    first = run.feed(Begin())
    assert items_started(first) == [(0, 1), (1, 1)]
    assert [c.input for c in first.commands if isinstance(c, RunAttempt)] == [
        {"x": 10, "i": 0},
        {"x": 20, "i": 1},
    ]
    assert items_started(item_done(run, 1, {"y": 2})) == [(2, 1)]
    item_done(run, 2, {"y": 3})
    assert run.step("m").state is StepState.RUNNING and run.step("m").items_succeeded == 2
    last = item_done(run, 0, {"y": 1})
    assert run.step("m").output == {"items": [{"y": 1}, {"y": 2}, {"y": 3}]}
    assert started(last) == [("after", 1, "b")]


def test_an_item_retries_then_fails_the_map_unless_it_continues_on_error() -> None:
    policy = RetryPolicy(max_attempts=2, initial_interval=1.0)
    strict = Run(
        [Step(id="m", agent="a", for_each="${input.xs}", retry_policy=policy)], input={"xs": [1, 2]}
    )
    strict.feed(Begin())
    failure = Failure("Boom", "no")
    strict.feed(AttemptFailed("m", 1, failure, item=0))
    retry = Timer(TimerKind.RETRY, "m", 1, 0)
    assert items_started(strict.feed(TimerFired(retry), at=T0 + 1)) == [(0, 2)]
    ended = strict.feed(AttemptFailed("m", 2, failure, item=0))
    assert any(isinstance(c, StopAttempt) and c.item == -1 for c in ended.commands)
    assert strict.state is ExecutionState.FAILED
    assert "item 0" in strict.step("m").error.message  # type: ignore[union-attr]

    lenient = Run(
        [
            Step(
                id="m",
                agent="a",
                for_each="${input.xs}",
                retry_policy=no_retry(),
                continue_on_error=True,
            )
        ],
        input={"xs": [1, 2]},
    )
    lenient.feed(Begin())
    lenient.feed(AttemptFailed("m", 1, failure, item=0))
    item_done(lenient, 1, {"ok": True})
    output = lenient.step("m").output
    assert output is not None and output["items"] == [None, {"ok": True}]
    assert output["errors"][0]["index"] == 0 and lenient.state is ExecutionState.SUCCEEDED


def test_a_restart_mid_map_delivers_running_items_again_and_reads_ended_ones() -> None:
    run = Run(
        [Step(id="m", agent="a", for_each="${input.xs}", max_parallel=2)], input={"xs": [1, 2, 3]}
    )
    run.feed(Begin())
    item_done(run, 0, {"y": 0})
    run.items.clear()  # a new process: nothing in memory
    run.values.clear()
    again = run.feed(Begin(), at=T0 + 5)
    assert sorted(items_started(again)) == [(1, 1), (2, 1)]  # item 1 again, with its number
    item_done(run, 1, {"y": 1})
    with pytest.raises(NotLoaded):  # its ended items are read from storage when needed
        item_done(run, 2, {"y": 2})
    run.items["m"] = {
        0: ItemResult("m", 0, 0, StepState.SUCCEEDED, 1, {"y": 0}),
        1: ItemResult("m", 0, 1, StepState.SUCCEEDED, 1, {"y": 1}),
    }
    item_done(run, 2, {"y": 2})
    assert run.step("m").output == {"items": [{"y": 0}, {"y": 1}, {"y": 2}]}


def test_for_each_must_give_a_list() -> None:
    run = Run([Step(id="m", agent="a", for_each="${input.x}")], input={"x": 3})
    run.feed(Begin())
    assert run.step("m").error.type == failures.FOR_EACH_ERROR  # type: ignore[union-attr]
    empty = Run([Step(id="m", agent="a", for_each="${input.xs}")], input={"xs": []})
    empty.feed(Begin())
    assert empty.step("m").output == {"items": []}


# Pause and resume ------------------------------------------------------------------------


def test_a_paused_execution_starts_nothing_until_resumed() -> None:
    run = Run(
        [
            Step(id="s1", agent="a"),
            Step(id="s2", agent="a", depends_on=["s1"]),
            Step(id="r", agent="b", retry_policy=RetryPolicy(initial_interval=1.0)),
        ]
    )
    run.feed(Begin())
    paused = run.feed(PauseRequested("lunch"))
    assert kinds(paused) == ["EXECUTION_PAUSED"]
    assert run.state is ExecutionState.PAUSED
    assert started(run.succeed("s1")) == []  # running attempts finish ...
    assert run.step("s1").state is StepState.SUCCEEDED
    assert run.step("s2").state is StepState.PENDING  # ... but nothing new starts
    run.fail("r")
    due = run.feed(TimerFired(Timer(TimerKind.RETRY, "r", 1)), at=T0 + 2)
    assert started(due) == [] and run.step("r").state is StepState.SCHEDULED  # waits too
    assert run.feed(PauseRequested("again")).empty
    resumed = run.feed(ResumeRequested(), at=T0 + 5)
    assert kinds(resumed)[0] == "EXECUTION_RESUMED"
    assert sorted(started(resumed)) == [("r", 2, "b"), ("s2", 1, "a")]
    assert run.state is ExecutionState.RUNNING


def test_a_paused_execution_stays_paused_across_a_restart_and_can_be_cancelled() -> None:
    run = Run([Step(id="s1", agent="a"), Step(id="s2", agent="a", depends_on=["s1"])])
    run.feed(Begin())
    run.feed(PauseRequested())
    restarted = run.feed(Begin(), at=T0 + 10)  # s1's attempt was cut short by the restart
    assert started(restarted) == []
    assert run.step("s1").state is StepState.SCHEDULED
    assert run.state is ExecutionState.PAUSED
    assert started(run.feed(ResumeRequested())) == [("s1", 1, "a")]  # the same attempt number
    run.feed(PauseRequested())
    run.feed(CancelRequested("no longer needed"))
    assert run.state is ExecutionState.CANCELLED


def test_a_paused_execution_ends_only_after_its_resume() -> None:
    run = Run([Step(id="s1", agent="a"), Step(id="f", agent="b", retry_policy=no_retry())])
    run.feed(Begin())
    run.feed(PauseRequested())
    run.succeed("s1")
    assert run.state is ExecutionState.PAUSED  # every step is done, but it was paused
    run.fail("f", non_retryable=True)
    assert run.step("f").state is StepState.FAILED and run.state is ExecutionState.PAUSED
    resumed = run.feed(ResumeRequested())
    assert kinds(resumed) == ["EXECUTION_RESUMED", "EXECUTION_FAILED"]
    assert run.state is ExecutionState.FAILED

    done = Run([Step(id="s1", agent="a")])
    done.feed(Begin())
    done.feed(PauseRequested())
    done.succeed("s1")
    assert done.state is ExecutionState.PAUSED
    assert kinds(done.feed(ResumeRequested()))[-1] == "EXECUTION_SUCCEEDED"


# Retry from a step -----------------------------------------------------------------------


def test_a_retry_runs_the_failed_step_and_downstream_again_and_keeps_upstream() -> None:
    run = Run(
        [
            Step(id="a", agent="a"),
            Step(id="b", agent="a", depends_on=["a"], retry_policy=no_retry()),
            Step(id="side", agent="a", depends_on=["a"]),
            Step(id="c", agent="a", depends_on=["b"]),
        ]
    )
    run.feed(Begin())
    run.succeed("a", {"kept": True})
    run.fail("b")
    assert run.state is ExecutionState.FAILED
    assert run.step("side").state is StepState.CANCELLED  # cut short by the failure
    retried = run.feed(RetryRequested(), at=T0 + 100)
    assert kinds(retried)[0] == "EXECUTION_RETRIED"
    assert payload_of(retried.events[0]).reset_steps == ["b", "side", "c"]  # type: ignore[attr-defined]
    assert run.state is ExecutionState.RUNNING and run.execution.run == 1
    assert run.step("a").output == {"kept": True}  # upstream kept, not run again
    # Attempt numbers go on: the re-run has a new idempotency key.
    assert sorted(started(retried)) == [("b", 2, "a"), ("side", 2, "a")]
    run.succeed("b")
    run.succeed("side")
    run.succeed("c")
    assert run.state is ExecutionState.SUCCEEDED
    assert run.execution.error is None and run.execution.end_time == T0 + 100


def test_a_retry_from_a_named_step_and_only_of_an_execution_that_ended_badly() -> None:
    run = Run([Step(id="a", agent="a"), Step(id="b", agent="a", depends_on=["a"])])
    run.feed(Begin())
    assert run.feed(RetryRequested(("a",))).empty  # still running
    run.succeed("a")
    run.succeed("b")
    assert run.feed(RetryRequested(("a",))).empty  # it succeeded
    failed = Run([Step(id="a", agent="a"), Step(id="b", agent="a", depends_on=["a"])])
    failed.feed(Begin())
    failed.feed(CancelRequested())
    retried = failed.feed(RetryRequested(("a",)))
    assert payload_of(retried.events[0]).reset_steps == ["a", "b"]  # type: ignore[attr-defined]
    assert started(retried) == [("a", 2, "a")]
