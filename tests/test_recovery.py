"""Durability: SIGKILL the server while 200 executions run, restart it on the same database,
and every execution finishes without re-running a step that had succeeded."""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import query_database, start_process, stop_processes

import baton
from baton import Agent, Client, Execution, PythonRuntime, Step, Workflow

pytestmark = pytest.mark.sqlite_only  # reads or shares the SQLite file


def effects(path: Path) -> collections.Counter[tuple[str, str]]:
    """How often each (execution, step) performed its side effect."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("/")
            if len(parts) == 3:
                counts[(parts[0], parts[1])] += 1
    return counts


def keys(path: Path) -> dict[tuple[str, str], list[str]]:
    """The idempotency keys each (execution, step) performed its side effect with."""
    found: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split("/")
        if len(parts) == 3:
            found[(parts[0], parts[1])].append(line)
    return found


async def effect_agent(
    client: Client, agent_id: str, function: str, effect_log: Path, max_pause: float
) -> None:
    """An agent that records each attempt's idempotency key in `effect_log`."""
    await client.agents.create(
        Agent(
            python=PythonRuntime(entry_point=f"test_agents_lib:{function}"),
            config={"path": str(effect_log), "max_pause": max_pause},  # type: ignore[arg-type]
        ),
        agent_id=agent_id,
    )


async def effect_chain(client: Client, effect_log: Path, max_pause: float) -> str:
    """A workflow of three steps one after another (`one`, `two`, `three`), each run by an
    agent that records its idempotency key in `effect_log`; returns its name."""
    await effect_agent(client, "effect", "effect", effect_log, max_pause)
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="one", agent="effect"),
                Step(id="two", agent="effect", depends_on=["one"]),
                Step(id="three", agent="effect", depends_on=["two"]),
            ]
        )
    )
    return workflow.name


async def durable_steps(location: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(execution, step) -> (state, attempt) as committed in the database."""
    rows = await query_database(
        location,
        "SELECT e.id, s.step_id, s.state, s.attempt FROM step_runs s "
        "JOIN executions e ON e.seq = s.execution_seq",
    )
    return {(e, s): (state, attempt) for e, s, state, attempt in rows}


@dataclass(frozen=True)
class AtTheKill:
    """What was durable, and what side effects were done, when the server was killed."""

    done: set[tuple[str, str]]
    running: dict[tuple[str, str], int]
    effects: collections.Counter[tuple[str, str]]

    @classmethod
    async def read(cls, location: str, effect_log: Path) -> AtTheKill:
        steps = await durable_steps(location)
        return cls(
            {k for k, (state, _) in steps.items() if state == "SUCCEEDED"},
            {k: attempt for k, (state, attempt) in steps.items() if state == "RUNNING"},
            effects(effect_log),
        )

    async def check_chains_recovered(
        self, location: str, effect_log: Path, finished: list[Execution]
    ) -> None:
        """After `effect_chain` executions finished: no step that had succeeded ran again,
        every step ran, and each attempt the kill cut short was delivered again, as is."""
        effects_after = effects(effect_log)
        for key in self.done:  # succeeded before the kill: never run again
            assert effects_after[key] == self.effects[key] == 1, key
        for execution in finished:  # everything else ran at least once
            execution_id = execution.name.split("/")[1]
            for step_id in ("one", "two", "three"):
                assert effects_after[(execution_id, step_id)] >= 1
        after = await durable_steps(location)
        for key, attempt in self.running.items():  # interrupted: delivered again, as is
            assert after[key][1] == attempt, key
            assert set(keys(effect_log)[key]) == {f"{key[0]}/{key[1]}/{attempt}"}, key


async def kill_after_effects(process: subprocess.Popen[str], effect_log: Path, target: int) -> None:
    """SIGKILL the server once `target` side effects are in `effect_log`."""
    while sum(effects(effect_log).values()) < target:  # noqa: ASYNC110 - another process writes it
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait)


async def restart_and_finish(
    database: Path, processes: list[subprocess.Popen[str]], started: list[Execution]
) -> list[Execution]:
    """Start a new server on `database` and wait until every one of `started` succeeds."""
    process, port = await start_process(database)
    processes.append(process)
    async with Client.connect(f"127.0.0.1:{port}", timeout=60) as client:
        finished = await asyncio.gather(
            *(client.executions.wait(e.name, timeout=60) for e in started)
        )
    assert all(e.state == Execution.STATE_SUCCEEDED for e in finished), [
        (e.name, e.state, e.error.message) for e in finished if e.state != Execution.STATE_SUCCEEDED
    ][:3]
    return finished


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill_at", [0.1, 0.5])
async def test_sigkill_mid_run_then_restart_finishes_everything(
    tmp_path: Path, kill_at: float
) -> None:
    """`kill_at`: the share of the 600 step side effects done when the server is killed."""
    database = tmp_path / "baton.db"
    effect_log = tmp_path / "effects.log"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
            workflow = await effect_chain(client, effect_log, 0.2)
            started = await asyncio.gather(
                *(client.executions.start(workflow, {"n": i}) for i in range(200))
            )
            target = int(600 * kill_at) + random.randint(0, 30)
            await kill_after_effects(process, effect_log, target)

        at_kill = await AtTheKill.read(str(database), effect_log)
        assert at_kill.done, "some steps finished before the kill"
        assert len(at_kill.done) < 600, "the kill came before everything finished"

        finished = await restart_and_finish(database, processes, started)
        await at_kill.check_chains_recovered(str(database), effect_log, finished)
    finally:
        stop_processes(processes)


@pytest.mark.timeout(60)
async def test_handoff_target_resumes_with_its_handoff_input(tmp_path: Path) -> None:
    database = tmp_path / "baton.db"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
            await client.agents.create(
                Agent(python=PythonRuntime(entry_point="test_agents_lib:relay")), agent_id="a"
            )
            await client.agents.create(
                Agent(
                    python=PythonRuntime(entry_point="test_agents_lib:linger"),
                    config={"seconds": 1.5},
                ),  # type: ignore[arg-type]
                agent_id="b",
            )
            await client.handoffs.create(
                baton.Handoff(
                    source_agent="a",
                    target_agent="b",
                    type=baton.Handoff.TYPE_SEQUENTIAL,
                    data_mapping={"chain": "from_a"},
                )
            )
            workflow = await client.workflows.create(Workflow(steps=[Step(id="s", agent="a")]))
            execution = await client.executions.start(workflow.name, {"original": True})
            async for event in client.executions.stream(execution.name):
                if event.type == baton.EventType.EVENT_TYPE_STEP_STARTED and event.attempt == 2:
                    break  # b is working on it
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
            done = await client.executions.wait(execution.name, timeout=20)
            interrupted = [
                e
                async for e in client.executions.events(
                    done.name, event_types=[baton.EventType.EVENT_TYPE_STEP_INTERRUPTED]
                )
            ]
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        # The restart says so in the log: attempt 2 on b was cut short.
        assert [(e.step_id, e.attempt, e.step_interrupted.agent) for e in interrupted] == [
            ("s", 2, "b")
        ]
        run = done.steps[0]
        assert run.attempt == 2  # a, then b: cut short by the kill, delivered again as 2
        assert [a.attempt for a in run.attempts] == [1, 2, 2]
        assert run.attempts[1].error.type == "INTERRUPTED"
        assert dict(run.output["received"]) == {"from_a": ["agents/a"]}
    finally:
        stop_processes(processes)


@pytest.mark.timeout(120)
async def test_sigkill_during_a_fan_out_with_retries(tmp_path: Path) -> None:
    database = tmp_path / "baton.db"
    effect_log = tmp_path / "effects.log"
    processes: list[subprocess.Popen[str]] = []
    try:
        process, port = await start_process(database)
        processes.append(process)
        async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
            await effect_agent(client, "flaky-effect", "effect_flaky", effect_log, 0.1)
            retry = baton.RetryPolicy(max_attempts=3, initial_interval={"nanos": 100_000_000})
            branches = [f"b{i}" for i in range(4)]
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="a", agent="flaky-effect", retry_policy=retry),
                        *[
                            Step(id=b, agent="flaky-effect", depends_on=["a"], retry_policy=retry)
                            for b in branches
                        ],
                        Step(id="c", agent="flaky-effect", depends_on=branches, retry_policy=retry),
                    ]
                )
            )
            started = await asyncio.gather(
                *(client.executions.start(workflow.name, {"n": i}) for i in range(60))
            )
            # 60 executions x 6 steps x 2 attempts = 720 side effects; kill around a third.
            await kill_after_effects(process, effect_log, random.randint(150, 350))

        before = await durable_steps(str(database))
        done_before = {key for key, (state, _) in before.items() if state == "SUCCEEDED"}
        effects_before = effects(effect_log)
        states = collections.Counter(state for state, _ in before.values())
        assert len(done_before) < 360, "the kill came before everything finished"
        assert states["RUNNING"] + states["RETRYING"] > 0, "the kill caught steps mid-flight"
        finished = await restart_and_finish(database, processes, started)
        effects_after = effects(effect_log)
        for key in done_before:
            assert effects_after[key] == effects_before[key], key  # not run again
        for execution in finished:
            for run in execution.steps:
                assert run.state == baton.StepRun.STATE_SUCCEEDED
                assert run.attempts[-1].error.type == ""  # the last attempt succeeded
    finally:
        stop_processes(processes)
