"""Assembles the server: storage, cache, services, health, reflection; runs it until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from baton.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    handoff_pb2,
    handoff_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    tool_pb2,
    tool_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from baton_server.api.agents import AgentServicer
from baton_server.api.auth import BearerAuth, Callers, parse_tokens
from baton_server.api.decoding import DecodingInterceptor
from baton_server.api.executions import ExecutionServicer
from baton_server.api.forwarding import OwnerForwarder
from baton_server.api.handoffs import HandoffServicer
from baton_server.api.http_gateway import HttpGateway, loopback_address
from baton_server.api.monitoring import MonitoringServicer
from baton_server.api.registration import generic_only
from baton_server.api.requests import PageTokens
from baton_server.api.schedules import ScheduleServicer
from baton_server.api.sizes import definition_size
from baton_server.api.task_offers import TaskOffers
from baton_server.api.telemetry import Telemetry, TelemetryInterceptor
from baton_server.api.tools import ToolServicer
from baton_server.api.workers import WorkerServicer, task_to_proto
from baton_server.api.workflows import WorkflowServicer
from baton_server.cluster.membership import Membership
from baton_server.config import Settings
from baton_server.definitions.service import Definitions
from baton_server.domain.agent_policy import AgentPolicy
from baton_server.events.relay import EventRelay
from baton_server.executions.journal import Journal
from baton_server.executions.metrics import Metrics
from baton_server.executions.service import Executions
from baton_server.runtimes.openai import OpenAIClient
from baton_server.runtimes.registry import Runtimes
from baton_server.runtimes.worker_broker import TaskBroker
from baton_server.schedules.service import Schedules
from baton_server.storage.cache import RedisCache
from baton_server.storage.codec import Codec
from baton_server.storage.coordination import CoordinationRepository
from baton_server.storage.database import Database, open_database
from baton_server.storage.definitions import DefinitionRepository
from baton_server.storage.event_bus import PostgresEventBus, RedisEventBus
from baton_server.storage.executions import ExecutionRepository
from baton_server.storage.health import HealthProbe, Status
from baton_server.storage.idempotency import IdempotencyRepository
from baton_server.storage.schedules import FiringRepository
from baton_server.tracing import Tracing, provider_from_environment

log = logging.getLogger(__name__)

SERVICES = [
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"],
    workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
    execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
    handoff_pb2.DESCRIPTOR.services_by_name["HandoffService"],
    schedule_pb2.DESCRIPTOR.services_by_name["ScheduleService"],
    tool_pb2.DESCRIPTOR.services_by_name["ToolService"],
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"],
]
SERVICE_NAMES = [s.full_name for s in SERVICES]
HEALTH_INTERVAL = 5.0
PURGE_INTERVAL = 3600.0


@dataclass
class Baton:
    """A started server and what it owns; `stop()` releases all of it."""

    server: grpc.aio.Server
    port: int
    db: Database
    cache: RedisCache | None
    health: health.aio.HealthServicer
    executions: Executions
    runtimes: Runtimes
    http: httpx.AsyncClient
    relay: EventRelay | None = None
    bus: RedisEventBus | PostgresEventBus | None = None
    telemetry: Telemetry | None = None
    metrics_port: int = 0
    http_port: int = 0
    """The HTTP/JSON API's port (0: off)."""
    callers: Callers | None = None
    """Who the auth tokens name (None with auth off)."""
    tracer_provider: TracerProvider | None = None
    """A provider the server made (from OTEL_*), shut down with it."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopped: bool = False

    async def stop(self, grace: float | None = None) -> None:
        """Reports NOT_SERVING, lets in-flight RPCs and agent attempts finish within `grace`
        (unfinished executions resume at the next start), then closes everything. Stopping
        a stopped server does nothing."""
        if self.stopped:
            return
        self.stopped = True
        await self.health.enter_graceful_shutdown()
        if self.runtimes.broker is not None:
            self.runtimes.broker.close()
        await asyncio.gather(self.server.stop(grace), self.executions.shutdown(grace or 0.0))
        await self.runtimes.close()
        await self.http.aclose()
        if self.relay is not None:
            await self.relay.stop()
        if self.bus is not None:
            await self.bus.close()
        if self.telemetry is not None:
            self.telemetry.close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # exports the spans still buffered
        for close in self.closers:
            await close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.cache is not None:
            await self.cache.close()
        await self.db.close()


async def create_server(
    settings: Settings, *, tracer_provider: TracerProvider | None = None
) -> Baton:
    """Opens storage, wires every service and starts listening on `settings.listen`.
    Spans go to `tracer_provider`, else over OTLP when the OTEL_* variables name an
    endpoint, else nowhere."""
    # Everything that can refuse the configuration does so before anything is opened.
    settings.check()
    _extend_import_path(settings.python_path)
    callers = Callers(parse_tokens(settings.auth_tokens) if settings.auth_tokens else {})
    auth = BearerAuth(callers) if callers.enabled else None
    credentials = _tls_credentials(settings)
    policy = AgentPolicy.parse(
        settings.python_agent_modules, settings.agent_secret_env, settings.agent_urls
    )
    db = await open_database(settings.database, synchronous=settings.sqlite_synchronous)
    codec = Codec(settings.compress_threshold)
    cache = (
        RedisCache(
            settings.redis_url, prefix=settings.redis_prefix, ttl=settings.cache_ttl, codec=codec
        )
        if settings.redis_url
        else None
    )
    idempotency = IdempotencyRepository(codec)
    execution_repo = ExecutionRepository(codec)
    definitions = Definitions(
        db,
        DefinitionRepository(codec),
        idempotency,
        cache,
        workflow_in_use=execution_repo.has_active,
        policy=policy,
        measure=definition_size,
        max_bytes=settings.max_message_bytes // 4,
    )
    # The one HTTP client agents use: every request it sends is checked against the policy.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=10.0),
        event_hooks={"request": [policy.check_request]},
    )
    coordination = CoordinationRepository()
    membership = Membership(db, coordination, settings.engine_lease, time.time)
    broker = TaskBroker(membership.id)
    runtimes = Runtimes(
        threads=settings.agent_threads,
        processes=settings.agent_processes,
        broker=broker,
        openai=OpenAIClient(http, policy),
        policy=policy,
        http=http,
        max_result_bytes=settings.max_output_bytes,
    )
    owns_provider = tracer_provider is None
    tracing = Tracing(tracer_provider or provider_from_environment())
    executions = Executions(
        Journal(db, execution_repo, idempotency, time.time, cache),
        definitions,
        runtimes,
        max_running=settings.max_running,
        http=http,
        stream_buffer=settings.stream_buffer,
        stream_poll=settings.stream_poll,
        membership=membership,
        coordination=coordination,
        max_deltas=settings.max_deltas,
        max_handoff_depth=settings.max_handoff_depth,
        max_output_bytes=settings.max_output_bytes,
        max_execution_bytes=settings.max_message_bytes * 3 // 4,
        tracing=tracing,
    )
    bus: RedisEventBus | PostgresEventBus | None = None
    relay = None
    if settings.redis_url:
        bus = RedisEventBus(settings.redis_url, f"{settings.redis_prefix}events")
    elif db.kind == "postgresql":
        bus = PostgresEventBus(db.path, "baton_events")
    if bus is not None:
        relay = EventRelay(bus, executions.hub, membership.id)
        executions.subscribe(relay.publish)
        relay.start()
    secret = await db.fetchone("SELECT value FROM meta WHERE key = 'page_token_secret'")
    assert secret is not None, "created by the first migration"
    tokens = PageTokens(bytes.fromhex(secret[0]), max_page_bytes=settings.max_message_bytes // 2)
    probe = HealthProbe(db, cache)

    telemetry = Telemetry(lambda: _gauges(executions, broker, cache))
    executions.subscribe(telemetry.count_events)
    # Outermost first: telemetry sees every call; auth answers before anything is decoded.
    interceptors: list[grpc.aio.ServerInterceptor] = [TelemetryInterceptor(telemetry, tracing)]
    if auth is not None:
        interceptors.append(auth)
    interceptors.append(DecodingInterceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # One server per port: with SO_REUSEPORT (gRPC's default) a second server would
            # serve beside the first, and calls would land on either at random.
            ("grpc.so_reuseport", 0),
        ],
    )
    # Commands for a run another replica holds are passed on to it; plaintext, so not with TLS.
    forwarder = OwnerForwarder(membership, allowed=not (settings.tls_cert or settings.tls_key))
    services = generic_only(server)  # one request task for all methods (see the module)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(definitions, tokens), services)
    workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(
        WorkflowServicer(definitions, tokens), services
    )
    handoff_pb2_grpc.add_HandoffServiceServicer_to_server(
        HandoffServicer(definitions, tokens), services
    )
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(
        ExecutionServicer(executions, tokens, callers, forwarder), services
    )
    tool_pb2_grpc.add_ToolServiceServicer_to_server(ToolServicer(definitions, tokens), services)
    schedules = Schedules(db, definitions, FiringRepository(codec), executions)
    schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(
        ScheduleServicer(schedules, tokens), services
    )
    offers = TaskOffers(
        db,
        broker,
        membership,
        apply=lambda kind, body: workers.apply_passed_on(kind, body),
        to_message=task_to_proto,
    )
    workers = WorkerServicer(broker, definitions, offers)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(workers, services)
    monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server(
        MonitoringServicer(
            probe, executions, broker, Metrics(executions.journal, definitions), time.time()
        ),
        services,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
    reflection.enable_server_reflection(
        [
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        services,
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, credentials)
    except (RuntimeError, OSError) as exc:
        await runtimes.close()
        await http.aclose()
        if relay is not None:
            await relay.stop()
        if bus is not None:
            await bus.close()
        if cache is not None:
            await cache.close()
        await db.close()
        raise SystemExit(
            f"baton: cannot listen on {settings.listen} (is another server using it?): {exc}"
        ) from None
    loopback = tempfile.mkdtemp(prefix="baton-") if settings.http_listen else ""
    if loopback:  # the HTTP/JSON API calls the gRPC API here (a directory only we can enter)
        server.add_insecure_port(loopback_address(loopback))
    membership.address = settings.advertise_address or _advertised(settings.listen, port)
    # Join the replicas and resume the unfinished executions of those gone before the first
    # call.
    await executions.begin()
    await server.start()

    baton = Baton(
        server, port, db, cache, health_servicer, executions, runtimes, http, relay, bus, telemetry
    )
    baton.closers.append(forwarder.close)
    baton.tasks.append(asyncio.create_task(offers.run(), name="worker-task-offers"))
    baton.callers = callers
    if owns_provider and isinstance(tracing.provider, TracerProvider):
        baton.tracer_provider = tracing.provider
    if settings.metrics_listen:
        baton.metrics_port = telemetry.serve(settings.metrics_listen)
    if loopback:
        await _serve_http(baton, settings, loopback)
    baton.tasks.append(asyncio.create_task(schedules.run(), name="schedules"))
    await _report_health(health_servicer, probe)
    baton.tasks.append(asyncio.create_task(_watch_health(health_servicer, probe)))
    purge = functools.partial(definitions.purge_request_ids, settings.idempotency_ttl)
    baton.tasks.append(
        asyncio.create_task(_periodically(PURGE_INTERVAL, purge, "purged old request ids"))
    )
    if settings.retention:
        # Every tenth of the retention, at most every minute.
        interval = min(max(settings.retention / 10, 0.1), 60.0)
        retain = functools.partial(_purge_ended, executions, settings.retention)
        baton.tasks.append(
            asyncio.create_task(_periodically(interval, retain, "deleted old executions"))
        )
    return baton


async def _serve_http(baton: Baton, settings: Settings, loopback: str) -> None:
    """Starts the HTTP/JSON API, which calls the gRPC API over the loopback socket."""
    channel = grpc.aio.insecure_channel(
        loopback_address(loopback),
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ],
    )
    gateway = HttpGateway(channel, settings.max_message_bytes, baton.callers)
    try:
        baton.http_port = await gateway.start(settings.http_listen)
    except OSError as exc:
        await channel.close()
        await baton.stop()
        raise SystemExit(f"baton: cannot listen on {settings.http_listen}: {exc}") from None

    async def close() -> None:
        await gateway.stop()
        await channel.close()
        shutil.rmtree(loopback, ignore_errors=True)

    baton.closers.insert(0, close)


def _extend_import_path(python_path: str) -> None:
    """Lets `python` agents' modules be imported from these directories."""
    for directory in reversed([d for d in python_path.split(os.pathsep) if d]):
        resolved = str(Path(directory).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)


def _advertised(listen: str, port: int) -> str:
    """The address others reach this process at: the listen host (or, for a wildcard, this
    host's address) with the bound port."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"{host}:{port}"


def _gauges(
    executions: Executions, broker: TaskBroker, cache: RedisCache | None
) -> dict[str, tuple[str, float]]:
    gauges = {
        "baton_executions_running": ("Executions running in this process", executions.running),
        "baton_executions_queued": ("Executions waiting for capacity", executions.queued),
        "baton_workers_connected": ("Workers polling this process", broker.connected_workers),
        "baton_event_streams": ("Open event streams", executions.hub.streams),
        "baton_replicas_live": (
            "Server processes running executions on this database, as last read",
            float(len(executions.membership.live)),
        ),
    }
    if cache is not None:
        gauges["baton_redis_up"] = ("1 while Redis answers", float(cache.healthy))
    return gauges


def _tls_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (and, with a client CA, mutual TLS) credentials, or None for plaintext."""
    if not settings.tls_cert and not settings.tls_key:
        return None  # Settings.check refused a partial TLS configuration
    with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def _report_health(servicer: health.aio.HealthServicer, probe: HealthProbe) -> None:
    report = await probe.check()
    status = (
        health_pb2.HealthCheckResponse.NOT_SERVING
        if report.status is Status.UNHEALTHY
        else health_pb2.HealthCheckResponse.SERVING
    )
    for name in ["", *SERVICE_NAMES]:
        await servicer.set(name, status)


async def _watch_health(servicer: health.aio.HealthServicer, probe: HealthProbe) -> None:
    """Keeps grpc.health.v1 in step with storage readiness."""
    while True:
        await asyncio.sleep(HEALTH_INTERVAL)
        try:
            await _report_health(servicer, probe)
        except Exception:  # keep watching whatever one probe did
            log.exception("health probe failed")


async def _periodically(interval: float, job: Callable[[], Awaitable[int]], done: str) -> None:
    """Runs `job` now and then every `interval` seconds, logging `done` with how many
    things it handled; a failed round is logged and retried at the next."""
    while True:
        try:
            count = await job()
            if count:
                log.info(done, extra={"count": count})
        except Exception:
            log.exception(f"{done}: failed")
        await asyncio.sleep(interval)


async def _purge_ended(executions: Executions, retention: float) -> int:
    """In the leading replica: deletes executions that ended `retention` seconds ago."""
    return await executions.purge_ended(retention) if executions.membership.leads else 0


GC_THRESHOLDS = (50_000, 20, 20)
"""The collector's thresholds in a server process (Python's default is 700, 10, 10). The
engine allocates many short-lived objects per step, nearly all freed by their reference
counts: at the default, cyclic collection took about a fifth of the event loop's time under
load (`make bench`, py-spy); at 10,000 still 12 % (gc.callbacks, 10-step chains), at
50,000 5 %, in collections of 10-20 ms."""


def _tune_garbage_collection() -> None:
    """Once start-up is done: what it allocated for good (modules, stubs, caches) is moved out
    of the collector's sight, and collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(settings: Settings) -> None:
    """Runs the server until SIGTERM or SIGINT, then drains within the grace period."""
    baton = await create_server(settings)
    _tune_garbage_collection()
    log.info(
        "baton serving",
        extra={
            "listen": settings.listen,
            "port": baton.port,
            "database": settings.database,
            "redis": bool(settings.redis_url),
            "http_port": baton.http_port,
        },
    )
    if baton.http_port:
        host = settings.http_listen.rpartition(":")[0] or "0.0.0.0"
        shown = "localhost" if host in ("0.0.0.0", "127.0.0.1", "") else host
        log.info(
            f"console at http://{shown}:{baton.http_port}/ (HTTP/JSON API under /v1/)",
            extra={"console": f"http://{shown}:{baton.http_port}/"},
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace})
    await baton.stop(settings.shutdown_grace)
    log.info("stopped")
