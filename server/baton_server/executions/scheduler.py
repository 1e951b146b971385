"""Which executions run now: those started while there is capacity run at once; the others
wait in a queue ordered by priority, then age, until a running one ends (BATON_MAX_RUNNING).
Also where each run's agent-slot semaphores live (an agent's max_concurrency)."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from baton_server.domain.definitions import Agent
from baton_server.domain.executions import Execution
from baton_server.executions.driver import RunDriver
from baton_server.language.plan import Plan


class Scheduler:
    """The runs of this process and the queue of executions waiting to run."""

    def __init__(
        self,
        max_running: int,
        new_run: Callable[[Execution, Plan], RunDriver],
        ended: Callable[[RunDriver], None],
    ) -> None:
        self.max_running = max_running
        self.runs: dict[str, RunDriver] = {}
        self.queued: dict[str, Execution] = {}
        self.stopping = False
        self._new_run = new_run
        self._ended = ended
        self._queue: list[tuple[int, int, str]] = []
        self._plans: dict[str, Plan] = {}
        self._reserved = 0
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}

    def has_capacity(self) -> bool:
        """True when a new execution may start at once: nothing waits in the queue and the
        limit leaves room."""
        return not self._queue and self._below_limit()

    def _below_limit(self) -> bool:
        """Whether one more execution may run (those running and being created counted)."""
        if self.stopping:
            return False
        return not self.max_running or len(self.runs) + self._reserved < self.max_running

    @contextmanager
    def reserved(self) -> Iterator[None]:
        """Holds a place for an execution being created to run at once."""
        self._reserved += 1
        try:
            yield
        finally:
            self._reserved -= 1

    @property
    def load(self) -> int:
        """How many executions this process runs, is creating to run, or queues."""
        return len(self.runs) + self._reserved + len(self.queued)

    def room(self, most: int) -> int:
        """How many more executions, at most `most`, could start now (none while stopping),
        with those queued here counted."""
        if self.stopping:
            return 0
        if not self.max_running:
            return most
        return max(0, min(most, self.max_running - self.load))

    def enqueue(self, execution: Execution, plan: Plan) -> None:
        """Queues an execution; it runs as soon as there is room."""
        self.queued[execution.id] = execution
        self._plans[execution.id] = plan
        heapq.heappush(self._queue, (-execution.priority, execution.seq, execution.id))
        self.fill()

    def take_queued(self, execution_id: str) -> Execution | None:
        """Removes an execution from the queue (it was cancelled), if it waits there."""
        self._plans.pop(execution_id, None)
        return self.queued.pop(execution_id, None)

    def start(self, run: RunDriver) -> None:
        """Adds a run that was prepared with the execution's creation."""
        self.runs[run.execution.id] = run

    def run(self, execution: Execution, plan: Plan) -> None:
        """Runs an execution now, whatever the limit (it was running before a restart)."""
        run = self._new_run(execution, plan)
        self.runs[execution.id] = run
        run.start()

    def fill(self) -> None:
        """Starts queued executions while there is room."""
        while self._queue and self._below_limit():
            _, _, execution_id = heapq.heappop(self._queue)
            execution = self.queued.pop(execution_id, None)
            plan = self._plans.pop(execution_id, None)
            if execution is None or plan is None:
                continue  # cancelled while queued
            self.run(execution, plan)

    def finished(self, run: RunDriver) -> None:
        """A run stopped (its execution ended, or the server is stopping it)."""
        self.runs.pop(run.execution.id, None)
        self._ended(run)
        self.fill()

    def slots(self, agent: Agent) -> asyncio.Semaphore | None:
        """The semaphore that bounds the agent's concurrent attempts (None: no bound)."""
        if not agent.max_concurrency:
            return None
        current = self._slots.get(agent.id)
        if current is None or current[0] != agent.max_concurrency:
            current = (agent.max_concurrency, asyncio.Semaphore(agent.max_concurrency))
            self._slots[agent.id] = current
        return current[1]
