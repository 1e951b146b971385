"""Durable timers over the real server, with a SIGKILL in the middle: a sleep step wakes at
its original time (or at once when that time passed while the server was down), and a
retry's backoff is neither lost nor restarted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import restartable
from google.protobuf import duration_pb2
from test_executions import step
from test_recovery import effect_agent, effects

import baton
from baton import Client, Execution, RetryPolicy, Step, StepRun, Workflow


def seconds(timestamp: Any) -> float:
    return float(timestamp.ToNanoseconds()) / 1e9


@pytest.mark.timeout(90)
async def test_sleep_steps_and_backoffs_keep_their_times_across_a_sigkill(tmp_path: Path) -> None:
    effect_log = tmp_path / "effects.log"
    async with restartable(tmp_path) as servers:
        async with Client.connect(f"127.0.0.1:{servers.port}", timeout=5) as client:
            await effect_agent(client, "effect", "effect_flaky", effect_log, 0.0)
            retries = RetryPolicy(max_attempts=2, initial_interval=duration_pb2.Duration(seconds=4))
            workflow = await client.workflows.create(
                Workflow(
                    steps=[
                        Step(id="nap", sleep=duration_pb2.Duration(seconds=4)),
                        Step(id="deadline", sleep_until="${input.at}"),
                        Step(id="after", agent="effect", depends_on=["nap"]),
                        Step(id="backoff", agent="effect", retry_policy=retries),
                    ]
                )
            )
            # "deadline" sleeps until 2 s from now: the server is down at that moment.
            started = await client.executions.start(workflow.name, {"at": time.time() + 2})
            began = seconds(started.create_time)
            await asyncio.sleep(1.0)
            now = await client.executions.get(started.name)
            assert step(now, "nap").state == StepRun.STATE_SLEEPING
            assert abs(seconds(step(now, "nap").wake_time) - (began + 4)) < 0.5
            assert step(now, "backoff").state == StepRun.STATE_RETRYING
        await servers.kill()
        await asyncio.sleep(2.0)
        restarted = time.time()
        port = await servers.start()
        serving = time.time()  # (a process takes a second or more to start on a slow day)
        async with Client.connect(f"127.0.0.1:{port}", timeout=10) as client:
            done = await client.executions.wait(started.name, timeout=30)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        nap, deadline, backoff = (step(done, s) for s in ("nap", "deadline", "backoff"))
        # The sleep woke at its first time, not 4 s after the restart.
        assert abs(seconds(nap.end_time) - (began + 4)) < 1.0
        # The deadline passed while the server was down: it woke as soon as it could.
        assert restarted < seconds(deadline.end_time) < serving + 1.0
        # The backoff's second attempt started 4 s after the first failed, restart or not.
        first, second = backoff.attempts[-2], backoff.attempts[-1]
        assert abs(seconds(second.start_time) - seconds(first.end_time) - 4) < 1.0
        # Two attempts each of "after" and "backoff" (first attempts fail on purpose), and
        # no attempt ran twice (each attempt's idempotency key is written once).
        keys = effect_log.read_text().split()
        assert len(keys) == len(set(keys)) == 4
        assert set(effects(effect_log).values()) == {2}


async def test_sleep_fields_are_validated(client: Client) -> None:
    bad = [
        (Step(id="a", sleep=duration_pb2.Duration(seconds=-1)), "sleep"),
        (Step(id="a", sleep_until="${nope.x}"), "sleep_until"),
        (
            Step(id="a", sleep_until="${input.t}", output_mapping={"x": "y"}),  # type: ignore[arg-type]
            "output_mapping",
        ),
        (Step(id="a", sleep=duration_pb2.Duration(seconds=1), fallback_agents=["x"]), "fallback"),
    ]
    for bad_step, field in bad:
        with pytest.raises(baton.InvalidArgumentError) as refused:
            await client.workflows.create(Workflow(steps=[bad_step]))
        assert field in str(refused.value), (field, refused.value)
