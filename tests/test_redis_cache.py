"""The Redis definition cache with a real private redis-server: read-through, invalidation
across servers sharing it, and every RPC still answering while Redis is gone."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import redis
from conftest import RedisProcess, StartServer, eventually, python_agent, redis_prefix

import baton
from baton import Agent, Client, Handoff, Step, Workflow
from baton.v1 import monitoring_pb2
from baton_server.app import Baton


async def two_servers(
    start_server: StartServer, redis_server: RedisProcess
) -> tuple[str, Baton, Baton, redis.Redis]:
    """Two servers on one database and one Redis (as two replicas would be), the key prefix
    they share, and a Redis client to look inside."""
    prefix = redis_prefix()
    first = await start_server(redis_url=redis_server.url, redis_prefix=prefix)
    second = await start_server(redis_url=redis_server.url, redis_prefix=prefix)
    return prefix, first, second, redis.Redis(port=redis_server.port)


async def test_reads_fill_the_cache_and_writes_invalidate_it_across_servers(
    start_server: StartServer, redis_server: RedisProcess
) -> None:
    prefix, first, second, inspect = await two_servers(start_server, redis_server)
    async with (
        Client.connect(f"127.0.0.1:{first.port}") as a,
        Client.connect(f"127.0.0.1:{second.port}") as b,
    ):
        await a.agents.create(python_agent("v1"), agent_id="cached")
        assert (await b.agents.get("cached")).display_name == "v1"
        assert inspect.hexists(f"{prefix}agent:cached", "d")

        await a.agents.update(
            Agent(name="agents/cached", display_name="v2"), update_mask=["display_name"]
        )
        assert (await b.agents.get("cached")).display_name == "v2"

        await a.workflows.create(Workflow(steps=[Step(id="s", agent="cached")]), workflow_id="w")
        assert (await b.workflows.get("w")).revision == 1
        await a.workflows.update(
            Workflow(name="workflows/w", display_name="x"), update_mask=["display_name"]
        )
        assert (await b.workflows.get("w")).revision == 2
        await a.workflows.delete("w")
        with pytest.raises(baton.NotFoundError):
            await b.workflows.get("w")

        await a.agents.create(python_agent(), agent_id="other")
        await a.handoffs.create(
            Handoff(source_agent="cached", target_agent="other", type=Handoff.TYPE_SEQUENTIAL),
            handoff_id="h",
        )
        assert (await b.handoffs.get("h")).priority == 0
        # A forced agent delete also removes its handoffs, and their cache entries.
        await a.agents.delete("cached", force=True)
        with pytest.raises(baton.NotFoundError):
            await b.agents.get("cached")
        with pytest.raises(baton.NotFoundError):
            await b.handoffs.get("h")

        # Re-creating a deleted id is visible at once (newer than the tombstone).
        await a.agents.create(python_agent("reborn"), agent_id="cached")
        assert (await b.agents.get("cached")).display_name == "reborn"
    inspect.close()


async def test_every_rpc_answers_from_sqlite_when_redis_is_killed(
    start_server: StartServer, own_redis: RedisProcess
) -> None:
    server = await start_server(redis_url=own_redis.url, redis_prefix=redis_prefix())
    async with Client.connect(f"127.0.0.1:{server.port}", timeout=5) as client:
        await client.agents.create(python_agent("before"), agent_id="agent")
        await client.agents.get("agent")  # cached now
        health = await client.system_health()
        assert health.status == monitoring_pb2.HEALTH_STATUS_HEALTHY

        own_redis.stop()  # SIGKILL

        assert (await client.agents.get("agent")).display_name == "before"
        await client.agents.update(
            Agent(name="agents/agent", display_name="during"), update_mask=["display_name"]
        )
        assert (await client.agents.get("agent")).display_name == "during"
        await client.workflows.create(
            Workflow(steps=[Step(id="s", agent="agent")]), workflow_id="w"
        )
        assert [w.name async for w in client.workflows.list()] == ["workflows/w"]
        await client.workflows.delete("w")
        with pytest.raises(baton.NotFoundError):
            await client.workflows.get("w")

        health = await client.system_health()
        assert health.status == monitoring_pb2.HEALTH_STATUS_DEGRADED
        by_name = {c.name: c for c in health.components}
        assert by_name["storage"].status == monitoring_pb2.HEALTH_STATUS_HEALTHY
        assert by_name["redis"].status == monitoring_pb2.HEALTH_STATUS_DEGRADED

        own_redis.start()  # back, empty, on the same port

        async def healthy() -> bool:
            status = (await client.system_health()).status
            return bool(status == monitoring_pb2.HEALTH_STATUS_HEALTHY)

        await eventually(healthy)
        assert (await client.agents.get("agent")).display_name == "during"


async def test_writes_lost_while_redis_hangs_leave_no_stale_entry(
    start_server: StartServer, own_redis: RedisProcess
) -> None:
    prefix = redis_prefix()
    server = await start_server(redis_url=own_redis.url, redis_prefix=prefix)
    assert own_redis.process is not None
    inspect = redis.Redis(port=own_redis.port)
    async with Client.connect(f"127.0.0.1:{server.port}", timeout=5) as client:
        await client.agents.create(python_agent("v1"), agent_id="agent")
        await client.agents.get("agent")
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # hangs, keeping the v1 entry
        try:
            # This read times out on Redis and falls back to SQLite; the server then leaves
            # Redis alone for a while, so the update's invalidation is never sent.
            assert (await client.agents.get("agent")).display_name == "v1"
            await client.agents.update(
                Agent(name="agents/agent", display_name="v2"), update_mask=["display_name"]
            )
            assert (await client.agents.get("agent")).display_name == "v2"
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert b"v1" in (inspect.hget(f"{prefix}agent:agent", "d") or b"")  # stale in Redis

        await asyncio.sleep(1.2)  # past the back-off: the server uses Redis again
        assert (await client.agents.get("agent")).display_name == "v2"
        cached = inspect.hget(f"{prefix}agent:agent", "d")
        assert cached is not None and b"v2" in cached  # purged, then refilled from SQLite
    inspect.close()


async def test_ended_executions_are_cached_running_ones_are_not(
    start_server: StartServer, redis_server: RedisProcess
) -> None:
    prefix, first, second, inspect = await two_servers(start_server, redis_server)
    async with (
        Client.connect(f"127.0.0.1:{first.port}") as a,
        Client.connect(f"127.0.0.1:{second.port}") as b,
    ):
        await a.agents.create(
            Agent(python=baton.PythonRuntime(entry_point="test_agents_lib:slow")), agent_id="slow"
        )
        workflow = await a.workflows.create(Workflow(steps=[Step(id="s", agent="slow")]))
        execution = await a.executions.start(workflow.name, {"seconds": 0.3})
        key = f"{prefix}execution:{execution.name.split('/')[1]}"
        running = await b.executions.get(execution.name)  # from SQLite, not cached
        assert running.state == baton.Execution.STATE_RUNNING
        assert not inspect.exists(key)
        done = await a.executions.wait(execution.name, timeout=10)
        seen = await b.executions.get(execution.name)  # ended: read through Redis
        assert seen == done
        assert inspect.hexists(key, "d")
        assert await b.executions.get(execution.name) == done  # now from Redis
    inspect.close()
