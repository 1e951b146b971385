"""The speed of light for Baton's design on this machine: the leanest durable chain engine on
the same stack (a grpc.aio server with raw-bytes handlers, sqlite3 in WAL with FULL sync, one
writer thread committing batches of jobs, one UPDATE and the INSERTs of a step's events per
step), with nothing else: no validation, no protos, no decisions. It bounds what any design
in Python can reach here, beside the empty-RPC ceiling `make bench` measures.

Run with `python bench/speed_of_light.py`; prints JSON. Not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from run import ROUNDS, empty_rpc_ceiling

Job = Callable[[sqlite3.Connection], None]


class Writer:
    """One thread that runs batches of jobs from BEGIN to COMMIT (group commit)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            self.conn.execute(f"PRAGMA {pragma}").fetchall()
        self.conn.executescript(
            "CREATE TABLE executions (seq INTEGER PRIMARY KEY, state TEXT, doc BLOB);"
            "CREATE TABLE steps (seq INTEGER, position INTEGER, state TEXT, doc BLOB,"
            " PRIMARY KEY (seq, position));"
            "CREATE TABLE events (seq INTEGER, sequence INTEGER, type TEXT, doc BLOB,"
            " PRIMARY KEY (seq, sequence));"
        )
        self.loop = asyncio.get_running_loop()
        self.waiting: list[tuple[Job, asyncio.Future[None]]] = []
        self.busy = False
        self.batches: list[list[tuple[Job, asyncio.Future[None]]]] = []
        self.ready = threading.Condition()
        threading.Thread(target=self.run, daemon=True).start()

    def submit(self, job: Job) -> asyncio.Future[None]:
        future = self.loop.create_future()
        self.waiting.append((job, future))
        if not self.busy:
            self.send()
        return future

    def send(self) -> None:
        batch, self.waiting = self.waiting, []
        self.busy = True
        with self.ready:
            self.batches.append(batch)
            self.ready.notify()

    def run(self) -> None:
        while True:
            with self.ready:
                while not self.batches:
                    self.ready.wait()
                batch = self.batches.pop(0)
            self.conn.execute("BEGIN IMMEDIATE")
            for job, _ in batch:
                job(self.conn)
            self.conn.execute("COMMIT")
            self.loop.call_soon_threadsafe(self.done, batch)

    def done(self, batch: list[tuple[Job, asyncio.Future[None]]]) -> None:
        for _, future in batch:
            future.set_result(None)
        self.busy = False
        if self.waiting:
            self.send()


async def noop(value: dict[str, Any]) -> dict[str, Any]:
    return {}


async def serve(path: str, steps: int) -> None:
    writer = Writer(path)
    numbers = itertools.count(1)
    ended: dict[int, asyncio.Future[None]] = {}
    chains: set[asyncio.Task[None]] = set()

    async def chain(seq: int, end: asyncio.Future[None]) -> None:
        for position in range(steps):
            output = json.dumps({"output": await noop({})}).encode()

            def job(
                conn: sqlite3.Connection, position: int = position, output: bytes = output
            ) -> None:
                conn.execute(
                    "UPDATE steps SET state = 'SUCCEEDED', doc = ? WHERE seq = ? AND position = ?",
                    (output, seq, position),
                )
                rows = [(seq, 3 * position + 3, "STEP_SUCCEEDED", output)]
                if position + 1 < steps:
                    conn.execute(
                        "UPDATE steps SET state = 'RUNNING' WHERE seq = ? AND position = ?",
                        (seq, position + 1),
                    )
                    rows.append((seq, 3 * position + 4, "STEP_SCHEDULED", b"{}"))
                    rows.append((seq, 3 * position + 5, "STEP_STARTED", b"{}"))
                else:
                    conn.execute("UPDATE executions SET state = 'SUCCEEDED' WHERE seq = ?", (seq,))
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)

            await writer.submit(job)
        end.set_result(None)

    async def start(request: bytes, context: Any) -> bytes:
        seq = next(numbers)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO executions VALUES (?, 'RUNNING', '{}')", (seq,))
            conn.executemany(
                "INSERT INTO steps VALUES (?, ?, 'PENDING', '{}')",
                [(seq, p) for p in range(steps)],
            )
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, '{}')",
                [(seq, 1, "EXECUTION_STARTED"), (seq, 2, "STEP_STARTED")],
            )

        await writer.submit(job)
        ended[seq] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(chain(seq, ended[seq]))
        chains.add(task)
        task.add_done_callback(chains.discard)
        return str(seq).encode()

    async def wait(request: bytes, context: Any) -> bytes:
        seq = int(request)
        await ended.pop(seq)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "probe.Engine",
        {
            "Start": grpc.unary_unary_rpc_method_handler(start),
            "Wait": grpc.unary_unary_rpc_method_handler(wait),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def measure(steps: int, executions: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(  # noqa: ASYNC220 - once, before measuring
            [sys.executable, __file__, "--serve", str(Path(tmp) / "probe.db"), str(steps)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        port = int(await asyncio.to_thread(process.stdout.readline))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                start = channel.unary_unary("/probe.Engine/Start")
                wait = channel.unary_unary("/probe.Engine/Wait")

                async def one() -> None:
                    await wait(await start(b""))

                for _ in range(20):
                    await one()
                latencies = []
                for _ in range(200):
                    begun = time.perf_counter()
                    await one()
                    latencies.append((time.perf_counter() - begun) * 1000)
                rates = []
                for _ in range(ROUNDS):
                    begun = time.perf_counter()
                    await asyncio.gather(*(one() for _ in range(executions)))
                    rates.append(executions / (time.perf_counter() - begun))
        finally:
            process.kill()
            process.wait()
    return {
        "sequential_p50_ms": round(statistics.median(latencies), 3),
        "executions_per_s": round(statistics.median(rates)),
    }


async def main() -> dict[str, Any]:
    figures: dict[str, Any] = await empty_rpc_ceiling(20000, 50)
    three = await measure(3, 500)
    ten = await measure(10, 500)
    figures.update(
        probe_sequential_3_step_p50_ms=three["sequential_p50_ms"],
        probe_concurrent_3_step_executions_per_s=three["executions_per_s"],
        probe_concurrent_10_step_steps_per_s=ten["executions_per_s"] * 10,
    )
    figures["ratios"] = {
        "sequential_3_step": round(
            three["sequential_p50_ms"] / figures["empty_rpc_sequential_p50_ms"], 2
        ),
        "concurrent_3_step": round(three["executions_per_s"] / figures["empty_rpc_per_s"], 3),
        "concurrent_10_step": round(ten["executions_per_s"] * 10 / figures["empty_rpc_per_s"], 3),
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", nargs=2, metavar=("DATABASE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve[0], int(args.serve[1])))
    else:
        print(json.dumps(asyncio.run(main()), indent=2))
