"""Agent functions the engine tests run (entry points `test_agents_lib:<name>`).

Named test_* so pytest's rootdir import puts it on sys.path; it holds no tests itself.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from baton import AgentError, HandoffRequest, StepContext, StepInfo


def add(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """{"values": [numbers]} -> {"value": their sum}."""
    return {"value": sum(value.get("values", []))}


def flaky(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Fails until attempt `succeed_on`."""
    if ctx.attempt < int(value.get("succeed_on", 3)):
        raise AgentError(f"attempt {ctx.attempt} failed on purpose", type="Flaky")
    return {"attempt": ctx.attempt, "key": ctx.idempotency_key}


async def slow(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Sleeps `seconds` (cancellable)."""
    await asyncio.sleep(float(value.get("seconds", 10)))
    return {"slept": value.get("seconds", 10)}


def fail(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Raises an AgentError shaped by the input."""
    raise AgentError(
        value.get("message", "boom"),
        type=value.get("type", "Boom"),
        non_retryable=bool(value.get("non_retryable", False)),
        retry_after=value.get("retry_after"),
    )


def crash(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Raises a plain exception."""
    raise ValueError("not a number: " + str(value.get("x")))


def blocking(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Blocks its thread, checking for cancellation, for `seconds`."""
    deadline = time.monotonic() + float(value.get("seconds", 0.05))
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            return {"cancelled": True}
        time.sleep(0.005)
    ctx.log.info("blocked", seconds=value.get("seconds", 0.05))
    return {"pid": os.getpid(), "cancelled": False}


def square_in_process(value: dict[str, Any], info: StepInfo) -> dict[str, Any]:
    """CPU-bound agent: runs in a worker process."""
    n = int(value["n"])
    return {"square": n * n, "pid": os.getpid(), "key": info.idempotency_key}


def chatty(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Writes log lines."""
    ctx.log.info("starting", step=ctx.step_id)
    ctx.log.warning("almost done")
    return {"ok": True}


def effect(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Appends its idempotency key to the file named by the agent config, after a short
    random pause: a side effect the recovery test can count. (Blocking: runs in a thread.)"""
    time.sleep(random.uniform(0.0, float(ctx.config.get("max_pause", 0.05))))
    with open(ctx.config["path"], "a") as log:
        log.write(ctx.idempotency_key + "\n")
    return {"done": ctx.step_id, "n": value.get("n", 0)}


async def typist(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Emits its text word by word as output deltas, like an LLM streaming tokens."""
    words = str(value.get("text", "")).split()
    for i, word in enumerate(words):
        ctx.emit(word + " ", {"index": i} if value.get("with_data") else None)
        await asyncio.sleep(0.005)
    return {"text": " ".join(words)}


async def marked(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Writes its pid to `value["marker"]`, then works for `seconds` unless cancelled; on
    cancellation writes "cancelled" to the marker file."""
    with open(value["marker"], "a") as marker:  # noqa: ASYNC230 - a few bytes
        marker.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + float(value.get("seconds", 5))
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            with open(value["marker"], "a") as marker:  # noqa: ASYNC230 - a few bytes
                marker.write("cancelled\n")
            return {"cancelled": True}
        await asyncio.sleep(0.02)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


def shout(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Upper-cases `text` (a plain function: runs in the worker's threads)."""
    ctx.log.info("shouting", length=len(str(value.get("text", ""))))
    return {"text": str(value.get("text", "")).upper(), "pid": os.getpid()}


def relay(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Adds its agent to `chain` and echoes the rest."""
    return {**value, "chain": [*value.get("chain", []), ctx.agent], "done": True}


def request_handoff(value: dict[str, Any], ctx: StepContext) -> HandoffRequest:
    """Asks to hand the step to `value["to"]`."""
    return HandoffRequest(value["to"], {"chain": [ctx.agent], "note": "over to you"})


async def linger(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Waits the agent's config `seconds`, then returns what it received."""
    await asyncio.sleep(float(ctx.config.get("seconds", 1)))
    return {"received": value}


def effect_flaky(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Like `effect`, but every step's first attempt fails (after its side effect), so that
    kills also land while steps wait to retry."""
    result = effect(value, ctx)
    if ctx.attempt == 1:
        raise AgentError("first attempts fail", type="Flaky")
    return result


def big(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Returns `size` bytes of text."""
    return {"text": "x" * int(value.get("size", 10))}


def noisy(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Writes `lines` log lines."""
    for i in range(int(value.get("lines", 10))):
        ctx.log.info("line", n=i)
    return {}


def picky(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Refuses items that are multiples of 3 (for good); echoes the others."""
    if int(value["item"]) % 3 == 0:
        raise AgentError(f"{value['item']} is a multiple of 3", type="Picky", non_retryable=True)
    return {"v": value["item"]}


def _effect(ctx: StepContext, what: str) -> None:
    """Appends `what idempotency-key` to the file the calling agent's config names."""
    path = ctx.config.get("effects")
    if path:
        with open(path, "a") as f:
            f.write(f"{what} {ctx.idempotency_key}\n")


def add_tool(arguments: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A tool: {"a", "b"} -> {"sum"}, after `pause` seconds; records its effect."""
    time.sleep(float(ctx.config.get("pause", 0)))
    _effect(ctx, "add")
    return {"sum": arguments["a"] + arguments["b"]}


def flaky_tool(arguments: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A tool that fails its first `fail_times` tries for each idempotency key."""
    path = ctx.config["effects"]
    tries = 0
    if os.path.exists(path):
        with open(path) as f:
            tries = sum(1 for line in f if line.split() == ["flaky", ctx.idempotency_key])
    _effect(ctx, "flaky")
    if tries < int(arguments.get("fail_times", 2)):
        raise AgentError(f"try {tries + 1} failed on purpose", type="Flaky")
    return {"tries": tries + 1}


async def broken_tool(arguments: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """A tool that always fails."""
    raise AgentError("the index is down", type="IndexDown")


def echo(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Returns its input."""
    return dict(value)
