"""A client generated independently from proto/ (not our package) drives the real server:
the contract other languages rely on."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from grpc_tools import protoc

from baton_server.app import Baton

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import sys
import grpc
import baton
from google.protobuf import field_mask_pb2
from baton.v1 import (agent_pb2, agent_pb2_grpc, handoff_pb2, handoff_pb2_grpc, workflow_pb2,
                      workflow_pb2_grpc)

assert baton.__file__.startswith(sys.argv[2]), baton.__file__  # the freshly generated code
channel = grpc.insecure_channel(sys.argv[1])
agents = agent_pb2_grpc.AgentServiceStub(channel)
workflows = workflow_pb2_grpc.WorkflowServiceStub(channel)
handoffs = handoff_pb2_grpc.HandoffServiceStub(channel)

for i in range(7):
    agents.CreateAgent(agent_pb2.CreateAgentRequest(
        agent_id=f"ind-{i}",
        agent=agent_pb2.Agent(display_name=f"a{i}", worker=agent_pb2.WorkerRuntime())))
seen, token = [], ""
while True:
    page = agents.ListAgents(agent_pb2.ListAgentsRequest(page_size=3, page_token=token))
    seen += [a.name for a in page.agents]
    token = page.next_page_token
    if not token:
        break
assert seen == [f"agents/ind-{i}" for i in range(7)], seen

wf = workflows.CreateWorkflow(workflow_pb2.CreateWorkflowRequest(
    workflow_id="ind-wf",
    workflow=workflow_pb2.Workflow(steps=[
        workflow_pb2.Step(id="a", agent="agents/ind-0"),
        workflow_pb2.Step(id="b", agent="agents/ind-1", depends_on=["a"])])))
wf2 = workflows.UpdateWorkflow(workflow_pb2.UpdateWorkflowRequest(
    workflow=workflow_pb2.Workflow(name=wf.name, tags=["x"]),
    update_mask=field_mask_pb2.FieldMask(paths=["tags"])))
assert wf2.revision == 2 and list(wf2.tags) == ["x"]
assert [w.name for w in workflows.ListWorkflows(
    workflow_pb2.ListWorkflowsRequest(tags=["x"])).workflows] == ["workflows/ind-wf"]

h = handoffs.CreateHandoff(handoff_pb2.CreateHandoffRequest(handoff=handoff_pb2.Handoff(
    source_agent="agents/ind-0", target_agent="agents/ind-1",
    type=handoff_pb2.Handoff.TYPE_SEQUENTIAL)))
assert handoffs.GetHandoff(handoff_pb2.GetHandoffRequest(name=h.name)).name == h.name

try:
    workflows.CreateWorkflow(workflow_pb2.CreateWorkflowRequest(workflow=workflow_pb2.Workflow(
        steps=[workflow_pb2.Step(id="a", agent="agents/ind-0", depends_on=["a"])])))
    raise SystemExit("cycle accepted")
except grpc.RpcError as error:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    keys = [k for k, _ in error.trailing_metadata()]
    assert "grpc-status-details-bin" in keys

handoffs.DeleteHandoff(handoff_pb2.DeleteHandoffRequest(name=h.name))
workflows.DeleteWorkflow(workflow_pb2.DeleteWorkflowRequest(name=wf.name))
for i in range(7):
    agents.DeleteAgent(agent_pb2.DeleteAgentRequest(name=f"agents/ind-{i}"))
assert not agents.ListAgents(agent_pb2.ListAgentsRequest()).agents
print("independent client ok")
"""


async def test_client_generated_from_proto_alone(server: Baton, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    protos = sorted(str(p) for p in (ROOT / "proto" / "baton" / "v1").glob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'proto'}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
    )
    assert status == 0
    (out / "baton" / "__init__.py").write_text("")
    (out / "baton" / "v1" / "__init__.py").write_text("")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        f"127.0.0.1:{server.port}",
        str(out),
        env={**os.environ, "PYTHONPATH": str(out)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert b"independent client ok" in stdout
