"""Finding and forgetting executions: the label filter, DeleteExecution, retention, and the
migration that labels executions stored before it. Real server, real SQLite, real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import RedisProcess, StartServer, redis_prefix
from test_executions import agent

import baton
from baton import Client, Execution, Step, Workflow
from baton_server.storage.database import SqliteDatabase


async def ended(client: Client, workflow: str, **labels: str) -> Execution:
    started = await client.executions.start(workflow, {}, labels=labels)
    return await client.executions.wait(started.name, timeout=20)


async def echo_workflow(client: Client) -> str:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    created = await client.workflows.create(Workflow(steps=[Step(id="s", agent="echo")]))
    return created.name


async def names(client: Client, **filters: object) -> list[str]:
    return [e.name async for e in client.executions.list(**filters)]  # type: ignore[arg-type]


async def test_list_executions_by_labels_all_must_match(client: Client) -> None:
    workflow = await echo_workflow(client)
    a_prod = await ended(client, workflow, team="a", env="prod")
    a_dev = await ended(client, workflow, team="a", env="dev")
    b_prod = await ended(client, workflow, team="b", env="prod")
    await ended(client, workflow)

    assert await names(client, labels={"team": "a"}) == [a_dev.name, a_prod.name]
    assert await names(client, labels={"team": "a", "env": "prod"}) == [a_prod.name]
    assert await names(client, labels={"env": "prod"}, page_size=1) == [b_prod.name, a_prod.name]
    assert await names(client, labels={"team": "c"}) == []
    assert await names(client, labels={"team": "a"}, state=Execution.STATE_FAILED) == []

    with pytest.raises(baton.InvalidArgumentError) as refused:
        await names(client, labels={"Bad Key!": "x"})
    assert "labels" in str(refused.value)


async def test_delete_execution_only_once_ended(client: Client) -> None:
    await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
    slow = await client.workflows.create(Workflow(steps=[Step(id="s", agent="sleeper")]))
    running = await client.executions.start(slow.name, {"seconds": 30}, labels={"k": "v"})
    with pytest.raises(baton.FailedPreconditionError) as refused:
        await client.executions.delete(running.name)
    assert refused.value.reason == "EXECUTION_NOT_TERMINAL"

    await client.executions.cancel(running.name)
    await client.executions.delete(running.name, request_id="delete-1")
    await client.executions.delete(running.name, request_id="delete-1")  # a repeat succeeds
    with pytest.raises(baton.NotFoundError):
        await client.executions.get(running.name)
    with pytest.raises(baton.NotFoundError):
        await client.executions.delete(running.name)
    with pytest.raises(baton.NotFoundError):
        [e async for e in client.executions.events(running.name)]
    assert await names(client) == []
    assert await names(client, labels={"k": "v"}) == []


async def test_a_deleted_execution_is_not_read_back_from_redis(
    start_server: StartServer, redis_server: RedisProcess
) -> None:
    prefix = redis_prefix()
    first = await start_server(redis_url=redis_server.url, redis_prefix=prefix)
    second = await start_server(redis_url=redis_server.url, redis_prefix=prefix)
    async with (
        Client.connect(f"127.0.0.1:{first.port}") as one,
        Client.connect(f"127.0.0.1:{second.port}") as other,
    ):
        done = await ended(one, await echo_workflow(one))
        assert (await other.executions.get(done.name)).name == done.name  # cached in Redis
        await one.executions.delete(done.name)
        with pytest.raises(baton.NotFoundError):
            await other.executions.get(done.name)


async def test_retention_deletes_old_ended_executions_in_batches(
    start_server: StartServer,
) -> None:
    server = await start_server(retention=1.0)
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        workflow = await echo_workflow(client)
        await agent(client, "sleeper", "baton_server.agents.builtin:sleep")
        slow = await client.workflows.create(Workflow(steps=[Step(id="s", agent="sleeper")]))
        old = [await ended(client, workflow) for _ in range(120)]  # more than one batch
        running = await client.executions.start(slow.name, {"seconds": 30})
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            left = await names(client)
            if left == [running.name]:
                break
            # Writes go on meanwhile and are not lost.
            await client.agents.create(
                baton.Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:relay"))
            )
            await asyncio.sleep(0.1)
        assert await names(client) == [running.name]  # the running one is kept
        with pytest.raises(baton.NotFoundError):
            await client.executions.get(old[0].name)
        fresh = await ended(client, workflow)
        assert fresh.name in await names(client)  # too young to go
        await client.executions.cancel(running.name)


async def test_the_label_migration_labels_executions_stored_before_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        done = await ended(client, await echo_workflow(client), team="a")
    await server.stop(0)
    # Back to schema 5, as a server of the previous version left it.
    db = await SqliteDatabase.open(str(tmp_path / "baton.db"))

    async def downgrade(conn: object) -> None:
        for statement in (
            "DROP TABLE execution_labels",
            "DROP INDEX executions_end_time",
            "DROP INDEX step_runs_waiting",  # and what later migrations made
            "DROP TABLE schedule_firings",
            "DROP TABLE schedules",
            "DROP TABLE map_items",
            "DROP TABLE agent_tools",
            "DROP TABLE tool_runs",
            "DROP TABLE tools",
            "DROP TABLE replicas",
            "DROP TABLE task_offers",
            "DROP TABLE worker_answers",
            """CREATE TABLE engine_lease (
                id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, host TEXT NOT NULL,
                pid INTEGER NOT NULL, expires REAL NOT NULL, address TEXT NOT NULL DEFAULT '')
                STRICT""",
            "ALTER TABLE executions DROP COLUMN owner",
            "ALTER TABLE executions DROP COLUMN fence",
        ):
            await conn.execute(statement)  # type: ignore[attr-defined]

    await db.write(downgrade)
    await db.write(lambda conn: conn.execute("PRAGMA user_version = 5"))
    await db.close()

    again = await start_server()
    async with Client.connect(f"127.0.0.1:{again.port}") as client:
        assert await names(client, labels={"team": "a"}) == [done.name]
