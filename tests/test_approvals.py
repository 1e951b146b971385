"""Approval steps over the real server with auth on: who may decide (operator, admin, a role
the step names), what is recorded (the token's name and role), rejection, timeouts,
`list --waiting`, bad requests, and a SIGKILL while a step waits for a person."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import StartServer, restartable
from test_executions import agent, step

import baton
from baton import Approval, Client, EventType, Execution, Step, StepRun, Workflow

TOKENS = (
    "o-token=operator:olga,a-token=admin,r-token=reader:rita,"
    "v-token=reviewer:vic,w-token=worker:wes"
)


def reviewed(*, roles: tuple[str, ...] = (), timeout: int = 0, continues: bool = False) -> Workflow:
    approval = Approval(roles=list(roles), prompt="Publish this draft?")
    approval.continue_on_reject = continues
    if timeout:
        approval.timeout.FromSeconds(timeout)
    return Workflow(
        steps=[
            Step(id="draft", agent="sleeper", input_mapping={"seconds": 0.3}),
            Step(id="review", approval=approval, depends_on=["draft"]),
            Step(
                id="publish",
                agent="echo",
                depends_on=["review"],
                when="steps.review.output.approved",
                input_mapping={"by": "${steps.review.output.decided_by}"},
            ),
        ]
    )


async def agents(client: Client) -> None:
    await agent(client, "echo", "baton_server.agents.builtin:echo")
    await agent(client, "sleeper", "baton_server.agents.builtin:sleep")


async def until_waiting(client: Client, name: str, step_id: str = "review") -> None:
    for _ in range(250):
        execution = await client.executions.get(name)
        if step(execution, step_id).state == StepRun.STATE_WAITING:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the step never waited")


async def test_who_may_decide_and_what_is_recorded(start_server: StartServer) -> None:
    server = await start_server(auth_tokens=TOKENS)
    target = f"127.0.0.1:{server.port}"
    async with (
        Client.connect(target, token="o-token") as operator,
        Client.connect(target, token="r-token") as reader,
        Client.connect(target, token="v-token") as reviewer,
        Client.connect(target, token="w-token") as worker,
    ):
        await agents(operator)
        workflow = await operator.workflows.create(reviewed(roles=("reviewer",)))
        assert workflow.steps[1].approval.roles == ["reviewer"]
        started = await operator.executions.start(workflow.name, {"text": "hello"})
        with pytest.raises(baton.FailedPreconditionError) as early:
            await operator.executions.approve(started.name, "review")
        assert early.value.reason == "STEP_NOT_WAITING"
        await until_waiting(operator, started.name)

        waiting = [e.name async for e in reader.executions.list(waiting=True)]
        assert waiting == [started.name]

        with pytest.raises(baton.PermissionDeniedError) as denied:
            await reader.executions.approve(started.name, "review")
        assert denied.value.reason == "ROLE_MAY_NOT_DECIDE"
        assert denied.value.metadata["role"] == "reader"
        with pytest.raises(baton.PermissionDeniedError) as stranger:
            await worker.executions.approve(started.name, "review")
        assert stranger.value.reason == "PERMISSION_DENIED"  # refused before the service
        with pytest.raises(baton.PermissionDeniedError):  # a custom role only reads
            await reviewer.executions.cancel(started.name)
        with pytest.raises(baton.FailedPreconditionError) as not_approval:
            await reviewer.executions.approve(started.name, "draft")
        assert not_approval.value.reason == "NOT_AN_APPROVAL_STEP"
        with pytest.raises(baton.InvalidArgumentError) as unknown:
            await reviewer.executions.approve(started.name, "nope")
        assert "step" in str(unknown.value)

        await reviewer.executions.approve(
            started.name, "review", reason="looks right", request_id="d-1"
        )
        again = await reviewer.executions.approve(
            started.name, "review", reason="looks right", request_id="d-1"
        )  # the same request again: nothing more is decided
        assert again.name == started.name
        with pytest.raises(baton.InvalidArgumentError) as reused:
            await reviewer.executions.approve(started.name, "review", reject=True, request_id="d-1")
        assert reused.value.reason == "REQUEST_ID_REUSED"
        done = await operator.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        assert step(done, "review").output == {
            "approved": True,
            "decided_by": "vic",
            "role": "reviewer",
            "reason": "looks right",
        }
        assert done.output == {"publish": {"by": "vic"}}
        decided = [
            e
            async for e in reader.executions.events(
                done.name, event_types=[EventType.EVENT_TYPE_APPROVAL_DECIDED]
            )
        ]
        assert [(e.step_id, e.approval_decided.decided_by) for e in decided] == [("review", "vic")]
        assert [e.name async for e in reader.executions.list(waiting=True)] == []
        with pytest.raises(baton.FailedPreconditionError) as ended:
            await operator.executions.approve(done.name, "review")
        assert ended.value.reason == "EXECUTION_ALREADY_TERMINAL"


async def test_a_rejection_fails_the_step_or_lets_the_workflow_branch(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_tokens=TOKENS)
    async with (
        Client.connect(f"127.0.0.1:{server.port}", token="o-token") as operator,
        Client.connect(f"127.0.0.1:{server.port}", token="a-token") as admin,
    ):
        await agents(operator)
        strict = await operator.workflows.create(reviewed())
        started = await operator.executions.start(strict.name, {})
        await until_waiting(operator, started.name)
        await admin.executions.approve(started.name, "review", reject=True, reason="too long")
        done = await operator.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_FAILED
        assert done.error.type == "APPROVAL_REJECTED"
        assert "token:" in done.error.message and "admin" in done.error.message
        assert "too long" in done.error.message

        lenient = await operator.workflows.create(reviewed(continues=True))
        started = await operator.executions.start(lenient.name, {})
        await until_waiting(operator, started.name)
        await operator.executions.approve(started.name, "review", reject=True)
        done = await operator.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_SUCCEEDED, done.error
        assert step(done, "review").output["approved"] is False
        assert step(done, "publish").state == StepRun.STATE_SKIPPED  # its `when` was false


async def test_an_approval_nobody_gives_times_out(start_server: StartServer) -> None:
    server = await start_server()  # auth off: callers are anonymous admins
    async with Client.connect(f"127.0.0.1:{server.port}") as client:
        await agents(client)
        workflow = await client.workflows.create(reviewed(timeout=1))
        started = await client.executions.start(workflow.name, {})
        done = await client.executions.wait(started.name, timeout=20)
        assert done.state == Execution.STATE_FAILED
        assert done.error.type == "APPROVAL_TIMEOUT"

        with pytest.raises(baton.InvalidArgumentError) as bad_role:
            await client.workflows.create(reviewed(roles=("Not A Role",)))
        assert "approval.roles[0]" in str(bad_role.value)
        with pytest.raises(baton.InvalidArgumentError) as with_agent:
            await client.workflows.create(
                Workflow(steps=[Step(id="x", approval=Approval(), fallback_agents=["echo"])])
            )
        assert "fallback_agents" in str(with_agent.value)


@pytest.mark.timeout(90)
async def test_a_step_waiting_for_a_person_survives_a_sigkill(tmp_path: Path) -> None:
    async with restartable(tmp_path, {"BATON_AUTH_TOKENS": TOKENS}) as servers:
        target = f"127.0.0.1:{servers.port}"
        async with Client.connect(target, timeout=5, token="o-token") as client:
            await agents(client)
            workflow = await client.workflows.create(reviewed(timeout=3600))
            started = await client.executions.start(workflow.name, {})
            await until_waiting(client, started.name)
            await servers.kill()
            with pytest.raises(baton.UnavailableError):  # refused, not lost
                await client.executions.approve(started.name, "review", request_id="once")
        target = f"127.0.0.1:{await servers.start()}"
        async with Client.connect(target, timeout=5, token="o-token") as client:
            execution = await client.executions.get(started.name)
            assert step(execution, "review").state == StepRun.STATE_WAITING
            assert step(execution, "draft").attempt == 1  # not run again
            waiting = [e.name async for e in client.executions.list(waiting=True)]
            assert waiting == [started.name]
            await client.executions.approve(started.name, "review", request_id="once")
            done = await client.executions.wait(started.name, timeout=20)
    assert done.state == Execution.STATE_SUCCEEDED, done.error
    assert done.output == {"publish": {"by": "olga"}}
