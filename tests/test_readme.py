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
