"""Workflow metrics and agent performance over a time window, computed from the stored
executions and their step attempts."""

from __future__ import annotations

import asyncio
import collections
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from baton_server.definitions.service import Definitions
from baton_server.domain import failures
from baton_server.domain.executions import ExecutionState, StepRun, Usage
from baton_server.executions.journal import Journal
from baton_server.storage.codec import Codec


@dataclass(frozen=True)
class Durations:
    """Mean and percentiles of a set of durations, in seconds (0 when there are none)."""

    average: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Durations:
        """Summarises `values`."""
        if not values:
            return cls()
        ordered = sorted(values)

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

        return cls(statistics.fmean(ordered), at(0.5), at(0.95), at(0.99))


@dataclass(frozen=True)
class WorkflowMetrics:
    """How a workflow's executions created in a window went."""

    workflow_id: str
    start: float
    end: float
    counts: dict[ExecutionState, int]
    durations: Durations

    @property
    def total(self) -> int:
        """Executions created in the window."""
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float:
        """Succeeded / ended, in [0, 1]."""
        ended = sum(n for state, n in self.counts.items() if state.terminal)
        return self.counts.get(ExecutionState.SUCCEEDED, 0) / ended if ended else 0.0


@dataclass(frozen=True)
class AgentPerformance:
    """How an agent's attempts started in a window went."""

    agent_id: str
    start: float
    end: float
    attempts: int = 0
    successes: int = 0
    errors: int = 0
    timeouts: int = 0
    running: int = 0
    durations: Durations = field(default_factory=Durations)
    errors_by_type: dict[str, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    """The tokens its attempts' LLM calls counted."""

    @property
    def success_rate(self) -> float:
        """Succeeded / finished attempts, in [0, 1]."""
        finished = self.successes + self.errors
        return self.successes / finished if finished else 0.0


class Metrics:
    """Reads the figures MonitoringService reports."""

    def __init__(self, journal: Journal, definitions: Definitions) -> None:
        self._journal = journal
        self._definitions = definitions

    async def workflow(self, workflow_id: str, start: float, end: float) -> WorkflowMetrics:
        """Metrics of the workflow's executions created in [start, end)."""
        await self._definitions.get_workflow(workflow_id)  # NOT_FOUND for unknown workflows
        rows = await self._journal.db.read(
            lambda conn: self._journal.repo.outcomes(conn, workflow_id, start, end)
        )
        counts: collections.Counter[ExecutionState] = collections.Counter()
        durations = []
        for state, started, ended in rows:
            counts[ExecutionState(state)] += 1
            if ended and started:
                durations.append(ended - started)
        return WorkflowMetrics(workflow_id, start, end, dict(counts), Durations.of(durations))

    async def agent(self, agent_id: str, start: float, end: float) -> AgentPerformance:
        """Performance of the agent's attempts started in [start, end)."""
        await self._definitions.get_agent(agent_id)  # NOT_FOUND for unknown agents
        blobs = await self._journal.db.read(
            lambda conn: self._journal.repo.step_blobs_overlapping(conn, start, end)
        )
        # Decoding and counting many step runs is CPU work: keep it off the event loop.
        return await asyncio.to_thread(_performance, agent_id, start, end, blobs)


def _performance(agent_id: str, start: float, end: float, blobs: list[bytes]) -> AgentPerformance:
    attempts = successes = errors = timeouts = running = 0
    durations: list[float] = []
    by_type: collections.Counter[str] = collections.Counter()
    usage = Usage()
    for blob in blobs:
        run = StepRun.from_doc(Codec.decode(blob))
        for attempt in run.attempts:
            if attempt.agent != agent_id or not start <= attempt.start_time < end:
                continue
            attempts += 1
            if attempt.usage:
                usage += Usage.from_doc(attempt.usage)
            if not attempt.end_time:
                running += 1
                continue
            durations.append(attempt.end_time - attempt.start_time)
            if attempt.error is None:
                successes += 1
            else:
                errors += 1
                by_type[attempt.error.type] += 1
                timeouts += attempt.error.type in failures.TIMEOUTS
    return AgentPerformance(
        agent_id,
        start,
        end,
        attempts,
        successes,
        errors,
        timeouts,
        running,
        Durations.of(durations),
        dict(by_type),
        usage,
    )
