"""MonitoringService: workflow metrics, agent performance and system health."""

from __future__ import annotations

import time
from typing import Any

import grpc

from baton.v1 import monitoring_pb2, monitoring_pb2_grpc
from baton_server import __version__
from baton_server.api.convert import duration, parse_name, time_of, timestamp, usage_to_proto
from baton_server.api.status import translate_errors
from baton_server.domain.executions import ExecutionState
from baton_server.errors import invalid_field
from baton_server.executions.metrics import Metrics
from baton_server.executions.service import Executions
from baton_server.runtimes.worker_broker import TaskBroker
from baton_server.storage.health import HealthProbe, Status

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    Status.HEALTHY: monitoring_pb2.HEALTH_STATUS_HEALTHY,
    Status.DEGRADED: monitoring_pb2.HEALTH_STATUS_DEGRADED,
    Status.UNHEALTHY: monitoring_pb2.HEALTH_STATUS_UNHEALTHY,
}

DEFAULT_WINDOW = 24 * 3600.0


def _window(request: Any) -> tuple[float, float]:
    """The request's [start_time, end_time), by default the last 24 hours."""
    end = time_of(request, "end_time")
    end = time.time() if end is None else end
    start = time_of(request, "start_time")
    start = end - DEFAULT_WINDOW if start is None else start
    if start >= end:
        raise invalid_field("start_time", "must be before end_time")
    return start, end


@translate_errors
class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    """baton.v1.MonitoringService."""

    def __init__(
        self,
        probe: HealthProbe,
        executions: Executions,
        broker: TaskBroker,
        metrics: Metrics,
        start_time: float,
    ) -> None:
        self._probe = probe
        self._executions = executions
        self._broker = broker
        self._metrics = metrics
        self._start_time = start_time

    async def GetWorkflowMetrics(
        self, request: monitoring_pb2.GetWorkflowMetricsRequest, context: Context
    ) -> monitoring_pb2.WorkflowMetrics:
        workflow_id = parse_name(request.workflow, "workflows", "workflow")
        start, end = _window(request)
        found = await self._metrics.workflow(workflow_id, start, end)
        counts = found.counts
        return monitoring_pb2.WorkflowMetrics(
            workflow=f"workflows/{workflow_id}",
            start_time=timestamp(start),
            end_time=timestamp(end),
            execution_count=found.total,
            succeeded_count=counts.get(ExecutionState.SUCCEEDED, 0),
            failed_count=counts.get(ExecutionState.FAILED, 0),
            cancelled_count=counts.get(ExecutionState.CANCELLED, 0),
            timed_out_count=counts.get(ExecutionState.TIMED_OUT, 0),
            active_count=sum(n for state, n in counts.items() if not state.terminal),
            success_rate=found.success_rate,
            average_duration=duration(found.durations.average),
            p50_duration=duration(found.durations.p50),
            p95_duration=duration(found.durations.p95),
            p99_duration=duration(found.durations.p99),
        )

    async def GetAgentPerformance(
        self, request: monitoring_pb2.GetAgentPerformanceRequest, context: Context
    ) -> monitoring_pb2.AgentPerformance:
        agent_id = parse_name(request.agent, "agents", "agent")
        start, end = _window(request)
        found = await self._metrics.agent(agent_id, start, end)
        return monitoring_pb2.AgentPerformance(
            agent=f"agents/{agent_id}",
            start_time=timestamp(start),
            end_time=timestamp(end),
            attempt_count=found.attempts,
            success_count=found.successes,
            error_count=found.errors,
            timeout_count=found.timeouts,
            success_rate=found.success_rate,
            average_duration=duration(found.durations.average),
            p95_duration=duration(found.durations.p95),
            errors_by_type=found.errors_by_type,
            running_count=found.running,
            usage=usage_to_proto(found.usage),
        )

    async def GetSystemHealth(
        self, request: monitoring_pb2.GetSystemHealthRequest, context: Context
    ) -> monitoring_pb2.SystemHealth:
        report = await self._probe.check()
        return monitoring_pb2.SystemHealth(
            status=_STATUS[report.status],
            components=[
                monitoring_pb2.ComponentHealth(
                    name=c.name,
                    status=_STATUS[c.status],
                    message=c.message,
                    latency=duration(c.latency),
                )
                for c in report.components
            ],
            version=__version__,
            start_time=timestamp(self._start_time),
            running_executions=self._executions.running,
            queued_executions=self._executions.queued,
            connected_workers=self._broker.connected_workers,
        )
