"""Fixtures: real servers on port 0 with SQLite files in temp dirs, private redis-servers on
free ports, and the real client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import redis
import uvloop
from fake_llm import fake_openai, scripted_llm  # noqa: F401 - fixtures for every test module

from baton import Agent, Client, PythonRuntime, WorkerRuntime
from baton_server.app import Baton, create_server
from baton_server.config import Settings

_prefixes = itertools.count()
TESTS = Path(__file__).resolve().parent
# The modules the tests' python agents live in: what an administrator would allow.
AGENT_MODULES = "baton_server.agents,test_agents_lib,examples,baton_agents,pkg"
# The variables the tests' openai agents take their keys from (FAKE_LLM_KEY: a local fake).
AGENT_SECRETS = "OPENAI_API_KEY,FAKE_LLM_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A private redis-server on a free port, which a test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The tests run on the loop the server runs on (`python -m baton_server`)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One private redis-server for the session; tests use their own key prefixes."""
    process = RedisProcess(tmp_path_factory.mktemp("redis"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server for one test, which it may kill."""
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


StartServer = Callable[..., Awaitable[Baton]]


BACKEND = os.environ.get("BATON_TEST_DATABASE", "sqlite")
"""Which database the servers of the tests use: `sqlite` (a file in the test's temp dir),
or `postgresql` (a database of its own on the machine's PostgreSQL, created for the test
with a random name and dropped after it)."""
POSTGRES = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
"""The PostgreSQL server the tests create their databases on."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With BATON_TEST_DATABASE=postgresql, the tests that are about SQLite are skipped."""
    if BACKEND == "sqlite":
        return
    skip = pytest.mark.skip(reason="runs on SQLite only")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


@contextlib.asynccontextmanager
async def database_for_test(tmp_path: Path, backend: str = BACKEND) -> AsyncIterator[str]:
    """A place for one test's data: a SQLite file in its temp dir, or (backend postgresql)
    a PostgreSQL database created with a random name and dropped after."""
    if backend != "postgresql":
        yield str(tmp_path / "baton.db")
        return
    name = f"baton_test_{os.getpid()}_{time.time_ns()}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    """Where this test's servers keep their data (one place, for all of them)."""
    async with database_for_test(tmp_path) as location:
        yield location


async def query_database(location: str, sql: str) -> list[tuple[Any, ...]]:
    """Runs a read-only query on a test's database, SQLite or PostgreSQL."""
    if location.startswith("postgresql://"):
        conn = await asyncpg.connect(location)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    with sqlite3.connect(location) as conn:
        return list(conn.execute(sql).fetchall())


@pytest.fixture
async def start_server(database: str) -> AsyncIterator[StartServer]:
    """Starts real servers on 127.0.0.1:0; all are stopped after the test."""
    started: list[Baton] = []

    async def start(**overrides: Any) -> Baton:
        settings = replace(
            Settings(),
            listen="127.0.0.1:0",
            database=overrides.pop("database", database),
            sqlite_synchronous="NORMAL",
            **{
                "python_agent_modules": AGENT_MODULES,
                "agent_secret_env": AGENT_SECRETS,
                **overrides,
            },
        )
        baton = await create_server(settings)
        started.append(baton)
        return baton

    yield start
    for baton in started:
        await baton.stop(0)


@pytest.fixture
async def server(start_server: StartServer) -> Baton:
    """A server on SQLite only."""
    return await start_server()


@pytest.fixture
async def client(server: Baton) -> AsyncIterator[Client]:
    """The async client connected to `server`."""
    async with Client.connect(f"127.0.0.1:{server.port}", timeout=10) as c:
        yield c


async def start_process(
    database: str | Path,
    *,
    listen: str = "127.0.0.1:0",
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: list[str] | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """Starts `python -m baton_server` on `database`; returns it and its port. Its log
    lines are appended to `log` when given (else read and dropped)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "BATON_DATABASE": str(database),
        "BATON_LOG_FORMAT": "json",
        "BATON_PYTHON_AGENT_MODULES": AGENT_MODULES,
        **(extra_env or {}),
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; its pipe is read in a thread
        [sys.executable, "-m", "baton_server", "--listen", listen],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    assert process.stderr is not None
    while True:
        line = await asyncio.to_thread(process.stderr.readline)
        if not line:
            raise AssertionError(f"server exited with {process.wait()}")
        entry = json.loads(line)
        if entry["message"] == "baton serving":
            # Keep draining its log so the pipe never fills.
            if log is None:
                asyncio.get_running_loop().run_in_executor(None, process.stderr.read)
            else:
                asyncio.get_running_loop().run_in_executor(None, _collect, process.stderr, log)
            return process, int(entry["port"])


def _collect(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


class Restartable:
    """Server processes on one database, one at a time, that a test SIGKILLs and starts
    again; `port` is the running one's."""

    def __init__(self, database: str, env: dict[str, str] | None = None) -> None:
        self.database = database
        self.env = env
        self.processes: list[subprocess.Popen[str]] = []
        self.port = 0

    @property
    def process(self) -> subprocess.Popen[str]:
        """The process started last."""
        return self.processes[-1]

    async def start(self) -> int:
        """Starts a server on the database; returns its port."""
        process, self.port = await start_process(self.database, extra_env=self.env)
        self.processes.append(process)
        return self.port

    async def kill(self) -> None:
        """SIGKILLs the running server and waits for it to be gone."""
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait)


@contextlib.asynccontextmanager
async def restartable(
    tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[Restartable]:
    """A started Restartable on the test's database; every process is stopped at the end."""
    async with database_for_test(tmp_path) as location:
        servers = Restartable(location, env)
        try:
            await servers.start()
            yield servers
        finally:
            stop_processes(servers.processes)


def stop_processes(processes: list[subprocess.Popen[str]]) -> None:
    """Kills server processes started by `start_process` and closes their pipes."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"baton-test-{time.time_ns()}-{next(_prefixes)}:"


def python_agent(display_name: str = "Echo", **fields: Any) -> Agent:
    """An agent with a Python runtime (the entry point is not imported by these services)."""
    return Agent(
        display_name=display_name,
        python=PythonRuntime(entry_point="baton_agents.echo:run"),
        **fields,
    )


async def worker_agent(client: Client, agent_id: str) -> None:
    """Creates `agents/{agent_id}`, served by remote workers (default WorkerRuntime)."""
    await client.agents.create(Agent(worker=WorkerRuntime()), agent_id=agent_id)


async def file_has(path: Path, text: str) -> bool:
    """Whether the file exists and holds `text` (another process writes it)."""
    return await asyncio.to_thread(lambda: path.exists() and text in path.read_text())


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Waits until `check()` is true."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    for name, san in (("server", "IP:127.0.0.1,DNS:localhost"), ("client", "DNS:client")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.pem",
        )
    return d


def tls(certs: Path, *, client: bool = False) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / "client.key").read_bytes() if client else None,
        certificate_chain=(certs / "client.pem").read_bytes() if client else None,
    )


def worker_process(port: int, *agents: str) -> subprocess.Popen[bytes]:
    """A worker process (tests/worker_process.py) serving `agents` from the server on
    127.0.0.1:`port`."""
    return subprocess.Popen(
        [sys.executable, str(TESTS / "worker_process.py"), f"127.0.0.1:{port}", *agents],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
