"""`make chaos`: SIGKILLs a real server at random moments under a mixed workload (fan-out,
conditions, retries, fallbacks, a map over items, a loop, a sleep and a child workflow),
many times, and checks what must hold: no execution lost or stuck, no step run again after its
success was durable, and no side effect under a second idempotency key unless the attempt
before it reported a failure. Slow (minutes): not part of CI.

    python bench/chaos.py [--rounds N] [--executions N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import start_process, stop_processes  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402

import baton  # noqa: E402
from baton import Agent, Client, Execution, Loop, PythonRuntime, Step, Workflow  # noqa: E402

RETRY = baton.RetryPolicy(max_attempts=4, initial_interval={"nanos": 50_000_000})


def effects(path: Path) -> collections.Counter[str]:
    """How often each idempotency key performed its side effect."""
    lines = path.read_text().splitlines() if path.exists() else []
    return collections.Counter(line for line in lines if line.count("/") == 2)


def succeeded_steps(database: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT e.id, s.step_id FROM step_runs s JOIN executions e ON e.seq = s.execution_seq "
            "WHERE s.state = 'SUCCEEDED'"
        ).fetchall()
    return {(e, s) for e, s in rows}


async def define(client: Client, effect_log: Path) -> str:
    for agent_id, function in (
        ("steady", "effect"),
        ("flaky", "effect_flaky"),
        ("failing", "fail"),
    ):
        await client.agents.create(
            Agent(
                python=PythonRuntime(entry_point=f"test_agents_lib:{function}"),
                config={"path": str(effect_log), "max_pause": 0.05},  # type: ignore[arg-type]
            ),
            agent_id=agent_id,
        )
    branches = [
        Step(id="b1", agent="flaky", depends_on=["a"], retry_policy=RETRY),
        Step(id="b2", agent="steady", depends_on=["a"], when="input.n % 2 == 0"),
        Step(
            id="b3",
            agent="failing",
            fallback_agents=["steady"],
            depends_on=["a"],
            retry_policy=baton.RetryPolicy(max_attempts=1),
        ),
    ]
    await client.workflows.create(
        Workflow(steps=[Step(id="s", agent="steady")]), workflow_id="chaos-child"
    )
    control = [
        Step(id="m", agent="steady", depends_on=["a"], for_each="${input.items}", max_parallel=2),
        Step(id="z", sleep=duration_pb2.Duration(nanos=200_000_000), depends_on=["a"]),
        Step(
            id="l",
            agent="steady",
            depends_on=["a"],
            loop=Loop(until="iteration >= 2", max_iterations=3),
        ),
        Step(id="k", workflow="chaos-child", depends_on=["a"]),
    ]
    workflow = await client.workflows.create(
        Workflow(
            steps=[
                Step(id="a", agent="steady"),
                *branches,
                *control,
                Step(
                    id="c",
                    agent="flaky",
                    depends_on=["b1", "b3", "m", "z", "l", "k"],
                    retry_policy=RETRY,
                ),
            ]
        ),
        workflow_id="chaos",
    )
    return workflow.name


async def main(rounds: int, per_round: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "chaos.db"
        effect_log = Path(tmp) / "effects.log"
        processes = []
        started: list[str] = []
        rerun_after_success = 0
        try:
            process, port = await start_process(database)
            processes.append(process)
            async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
                workflow = await define(client, effect_log)
            for round_ in range(rounds):
                async with Client.connect(f"127.0.0.1:{port}", timeout=30) as client:
                    for i in range(per_round):
                        execution = await client.executions.start(
                            workflow, {"n": i, "items": [1, 2, 3]}
                        )
                        started.append(execution.name.removeprefix("executions/"))
                    await asyncio.sleep(random.uniform(0.05, 0.6))
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait)
                done_before = succeeded_steps(database)
                counts_before = effects(effect_log)
                process, port = await start_process(database)
                processes.append(process)
                await asyncio.sleep(random.uniform(0.05, 0.3))
                counts_after = effects(effect_log)
                for execution_id, step_id in done_before:
                    mine = [k for k in counts_after if k.startswith(f"{execution_id}/{step_id}/")]
                    if any(counts_after[k] != counts_before[k] for k in mine):
                        rerun_after_success += 1
                print(f"round {round_ + 1}: killed, restarted", file=sys.stderr)
            async with Client.connect(f"127.0.0.1:{port}", timeout=60) as client:
                begun = time.monotonic()
                finished = [await client.executions.wait(name, timeout=60) for name in started]
                waited = time.monotonic() - begun
        finally:
            stop_processes(processes)
        stuck = [e.name for e in finished if e.state != Execution.STATE_SUCCEEDED]
        keys = effects(effect_log)
        by_step: dict[str, set[str]] = collections.defaultdict(set)
        for key in keys:
            by_step[key.rsplit("/", 1)[0]].add(key.rsplit("/", 1)[1])
        # steady steps never fail: one key; flaky ones fail their first attempt: two; the
        # loop runs three iterations, one key each.
        allowed = {"b1": 2, "c": 2, "l": 3}
        extra_keys = [
            step
            for step, attempts in by_step.items()
            if len(attempts) > allowed.get(step.split("/")[1], 1)
        ]
        duplicated = sum(count - 1 for count in keys.values() if count > 1)
        print(
            f"executions {len(started)}, not succeeded {len(stuck)}, "
            f"steps re-run after a durable success {rerun_after_success}, "
            f"steps with an extra idempotency key {len(extra_keys)}, "
            f"redelivered effects under the same key {duplicated}, "
            f"waited {waited:.1f}s at the end"
        )
        return 1 if stuck or rerun_after_success or extra_keys else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--executions", type=int, default=30, help="started per round")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.executions)))
