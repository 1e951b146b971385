"""A worker process for the tests: `python worker_process.py ADDRESS AGENT...` serves each
agent with the handler of the same name in test_agents_lib (`agents/slow` -> `slow`)."""

from __future__ import annotations

import asyncio
import sys

import test_agents_lib

import baton


async def main(address: str, agents: list[str]) -> None:
    async with baton.Client.connect(address) as client:
        handlers = {f"agents/{a}": getattr(test_agents_lib, a.replace("-", "_")) for a in agents}
        await baton.Worker(client, handlers, max_concurrent_tasks=4).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
