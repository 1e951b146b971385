"""How an agent attempt is run, by runtime: `python` callables (async on the loop, plain ones
in a thread pool, CPU-bound ones in a process pool), `worker` agents through the task
broker, `openai` agents as durable loops over the shared HTTP client, calling their tools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import logging
import multiprocessing
from collections.abc import Callable
from typing import Any

import httpx

from baton import AgentError, HandoffRequest, StepContext, StepLogger
from baton_server.domain import failures
from baton_server.domain.agent_policy import AgentPolicy, PolicyViolationError
from baton_server.domain.attempts import AgentResult, AttemptFailedError, AttemptInfo
from baton_server.domain.definitions import (
    Agent,
    OpenAIRuntime,
    PythonRuntime,
    WorkerRuntime,
    runtime_kind,
)
from baton_server.domain.executions import Failure
from baton_server.runtimes.agent_loop import AgentLoop
from baton_server.runtimes.openai import OpenAIClient
from baton_server.runtimes.tools import ToolRunner
from baton_server.runtimes.worker_broker import TaskBroker

log = logging.getLogger(__name__)

AgentFunction = Callable[..., Any]


class Runtimes:
    """Runs agent attempts. Holds the pools and imported entry points for the server's
    lifetime: imports happen once, the process pool starts on first use."""

    def __init__(
        self,
        *,
        threads: int = 32,
        processes: int = 0,
        broker: TaskBroker | None = None,
        openai: OpenAIClient | None = None,
        policy: AgentPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        max_result_bytes: int = 1 << 20,
    ) -> None:
        self.broker = broker
        self.policy = policy or AgentPolicy()
        self.tools = ToolRunner(self, http, self.policy)
        self.loop = AgentLoop(openai, self.tools, max_result_bytes) if openai else None
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="baton-agent"
        )
        self._processes: concurrent.futures.ProcessPoolExecutor | None = None
        self._process_count = processes or None
        self._functions: dict[str, tuple[AgentFunction, bool]] = {}
        self._import_lock = asyncio.Lock()

    async def invoke(self, agent: Agent, value: dict[str, Any], info: AttemptInfo) -> AgentResult:
        """Runs one attempt; returns the agent's result or raises AttemptFailedError."""
        runtime = agent.runtime
        if isinstance(runtime, WorkerRuntime) and self.broker is not None:
            return await self.broker.run(agent.id, runtime, value, info, agent.config)
        if isinstance(runtime, OpenAIRuntime) and self.loop is not None:
            try:
                return await self.loop.run(agent, value, info)
            except PolicyViolationError as exc:
                raise failure_of(exc) from None
        if not isinstance(runtime, PythonRuntime):
            raise AttemptFailedError(
                Failure(
                    failures.RUNTIME_NOT_AVAILABLE,
                    f"agents/{agent.id} has runtime {runtime_kind(runtime)!r}, which this "
                    "version of Baton cannot run yet",
                    non_retryable=True,
                )
            )
        result = await self.call_python(runtime, value, info)
        if isinstance(result, HandoffRequest):
            return AgentResult(as_output(result.output), result.target.removeprefix("agents/"))
        return AgentResult(as_output(result))

    async def call_python(
        self, runtime: PythonRuntime, value: dict[str, Any], info: AttemptInfo
    ) -> Any:
        """Calls a Python entry point (an agent's or a tool's) with `value` and the step
        context; returns what it returned or raises AttemptFailedError."""
        found = self._functions.get(runtime.entry_point)  # (loaded: no coroutine to await)
        function, is_async = found or await self._function(runtime.entry_point)
        ctx = step_context(info)
        try:
            if is_async:
                return await function(value, ctx)
            if runtime.cpu_bound:
                return await asyncio.get_running_loop().run_in_executor(
                    self._process_pool(), function, value, ctx.info()
                )
            return await asyncio.get_running_loop().run_in_executor(
                self._threads, functools.partial(function, value, ctx)
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything an agent raises is that attempt's failure
            raise failure_of(exc) from None

    async def call_worker(
        self, queue: str, runtime: WorkerRuntime, value: dict[str, Any], info: AttemptInfo
    ) -> AgentResult:
        """Runs a task on a remote worker serving `queue` (a tool, `tools/{id}`)."""
        if self.broker is None:
            raise AttemptFailedError(
                Failure(
                    failures.RUNTIME_NOT_AVAILABLE,
                    "this server has no worker service",
                    non_retryable=True,
                )
            )
        return await self.broker.run(queue, runtime, value, info, {})

    async def close(self) -> None:
        """Stops the pools without waiting for abandoned attempts."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)

    async def _function(self, entry_point: str) -> tuple[AgentFunction, bool]:
        """The entry point's function, and whether it is a coroutine function, the first
        time (callers look in `_functions` first): loaded once, if the policy allows it
        (the policy is this process's for its lifetime)."""
        problem = self.policy.entry_point_problem(entry_point)
        if problem is not None:  # the policy was narrowed after the agent was written
            raise AttemptFailedError(
                Failure(failures.ENTRY_POINT_NOT_ALLOWED, problem, non_retryable=True)
            )
        async with self._import_lock:
            if entry_point not in self._functions:
                function = await asyncio.to_thread(_load, entry_point)
                self._functions[entry_point] = (function, inspect.iscoroutinefunction(function))
        return self._functions[entry_point]

    def _process_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._processes is None:
            # spawn, not fork: forking a process that runs gRPC and SQLite threads can deadlock.
            self._processes = concurrent.futures.ProcessPoolExecutor(
                self._process_count, mp_context=multiprocessing.get_context("spawn")
            )
        return self._processes


def _load(entry_point: str) -> AgentFunction:
    module_name, _, attribute = entry_point.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise AttemptFailedError(
            Failure(
                failures.ENTRY_POINT_NOT_FOUND,
                f"cannot load {entry_point!r}: {exc}",
                non_retryable=True,
            )
        ) from None
    if not callable(target):
        raise AttemptFailedError(
            Failure(
                failures.ENTRY_POINT_NOT_FOUND,
                f"{entry_point!r} is not callable",
                non_retryable=True,
            )
        )
    function: AgentFunction = target
    return function


def step_context(info: AttemptInfo) -> StepContext:
    """The agent API's view of an attempt (what a python agent is called with)."""
    return StepContext(
        execution=info.execution,
        step_id=info.step_id,
        attempt=info.attempt,
        idempotency_key=info.idempotency_key,
        agent=info.agent,
        config=info.config,
        cancelled=info.cancelled,
        log=StepLogger(info.log),
        http=info.http,
        deltas=info.deltas,
        deadline=info.deadline,
    )


def failure_of(exc: BaseException) -> AttemptFailedError:
    """The AttemptFailedError for whatever an agent raised."""
    if isinstance(exc, AttemptFailedError):
        return exc
    if isinstance(exc, PolicyViolationError):
        return AttemptFailedError(Failure(exc.failure_type, exc.message, non_retryable=True))
    if isinstance(exc, AgentError):
        return AttemptFailedError(
            Failure(exc.type, exc.message, non_retryable=exc.non_retryable, details=exc.details),
            exc.retry_after,
        )
    return AttemptFailedError(Failure(type(exc).__name__, str(exc) or type(exc).__name__))


def as_output(result: Any) -> dict[str, Any]:
    """An agent's return value as a step output: a dict as it is, None as {}, anything else
    under the key `result`."""
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    return {"result": result}
