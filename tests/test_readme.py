"""The README's first-workflow example runs as written against a real server."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from baton_server.app import Baton

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_readme_example_runs(server: Baton, tmp_path: Path) -> None:
    text = README.read_text()
    match = re.search(r"## A first workflow\n\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its example"
    script = tmp_path / "example.py"
    script.write_text(match.group(1).replace("localhost:50051", f"127.0.0.1:{server.port}"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines == [
        "workflows/feature revision 1",
        "STATE_SUCCEEDED {'specs': 'Plan for OAuth login'}",
        "1 EVENT_TYPE_EXECUTION_QUEUED ",
        "2 EVENT_TYPE_EXECUTION_STARTED ",
        "3 EVENT_TYPE_STEP_SCHEDULED architecture",
        "4 EVENT_TYPE_STEP_STARTED architecture",
        "5 EVENT_TYPE_STEP_SUCCEEDED architecture",
        "6 EVENT_TYPE_STEP_SCHEDULED detail",
        "7 EVENT_TYPE_STEP_STARTED detail",
        "8 EVENT_TYPE_STEP_SUCCEEDED detail",
        "9 EVENT_TYPE_EXECUTION_SUCCEEDED ",
        "WORKFLOW_CYCLE workflow.steps[0].depends_on",
    ]


async def test_readme_worker_yaml_and_stubless_health_check(server: Baton, tmp_path: Path) -> None:
    text = README.read_text()
    yaml_block = re.search(r"```yaml\n(kind: Agent\nid: summarizer\nworker:.*?)```", text, re.S)
    assert yaml_block, "the README lost its worker agent in YAML"
    definitions = tmp_path / "worker.yaml"
    definitions.write_text(yaml_block.group(1))
    address = f"127.0.0.1:{server.port}"
    apply = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "baton.cli",
        "--server",
        address,
        "apply",
        "-f",
        str(definitions),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(apply.communicate(), 60)
    assert apply.returncode == 0, err.decode()
    assert "agents/summarizer" in out.decode() and "created" in out.decode()

    health = re.search(r"```bash\n(python -c '.*?')\n```", text, re.S)
    assert health, "the README lost its stubless health check"
    command = health.group(1).replace("localhost:50051", address)
    check = await asyncio.create_subprocess_shell(
        command.replace("python -c", f"{sys.executable} -c", 1),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(check.communicate(), 60)
    assert check.returncode == 0, err.decode()
    assert "SERVING" in out.decode()
