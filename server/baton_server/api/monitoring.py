"""MonitoringService: system health now; workflow and agent metrics come with the engine."""

from __future__ import annotations

from typing import Any

import grpc

from baton.v1 import monitoring_pb2, monitoring_pb2_grpc
from baton_server import __version__
from baton_server.api.convert import duration, timestamp
from baton_server.api.status import translate_errors
from baton_server.api.unimplemented import unimplemented
from baton_server.engine.executions import Executions
from baton_server.engine.health import HealthProbe, Status
from baton_server.engine.task_broker import TaskBroker

Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    Status.HEALTHY: monitoring_pb2.HEALTH_STATUS_HEALTHY,
    Status.DEGRADED: monitoring_pb2.HEALTH_STATUS_DEGRADED,
    Status.UNHEALTHY: monitoring_pb2.HEALTH_STATUS_UNHEALTHY,
}

_Base: type = unimplemented(
    monitoring_pb2_grpc.MonitoringServiceServicer,
    monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"],
    keep={"GetSystemHealth"},
)


@translate_errors
class MonitoringServicer(_Base):  # type: ignore[misc]
    """baton.v1.MonitoringService (GetWorkflowMetrics and GetAgentPerformance: not yet)."""

    def __init__(
        self, probe: HealthProbe, executions: Executions, broker: TaskBroker, start_time: float
    ) -> None:
        self._probe = probe
        self._executions = executions
        self._broker = broker
        self._start_time = start_time

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
