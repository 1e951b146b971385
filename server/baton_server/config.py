"""Server settings: defaults, `BATON_*` environment variables and command-line flags."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from baton_server.domain.agent_policy import AgentPolicy, PolicySettingError


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Each field `x` is read from `BATON_X` and `--x`."""

    listen: str = "0.0.0.0:50051"
    """Address the gRPC server binds; port 0 picks a free port."""
    database: str = "./baton.db"
    """Path of the SQLite file (created with its schema on first start)."""
    sqlite_synchronous: str = "FULL"
    """SQLite `synchronous` pragma: FULL (fsync every commit) or NORMAL (faster; a power cut
    may lose the last commits, a process crash loses nothing)."""
    redis_url: str = ""
    """Redis for the definition cache, e.g. redis://localhost:6379/0; empty means none."""
    redis_prefix: str = "baton:"
    """Prefix of every Redis key this server writes."""
    cache_ttl: float = 300.0
    """Seconds a cached definition lives in Redis."""
    max_running: int = 10_000
    """Most executions running at once; more wait QUEUED (by priority, then age). 0: no limit."""
    agent_threads: int = 64
    """Threads for plain (blocking) Python agent functions."""
    agent_processes: int = 0
    """Processes for CPU-bound Python agents (started on first use); 0: one per core."""
    stream_buffer: int = 1000
    """Live events buffered per event stream; a slower stream catches up from storage."""
    max_handoff_depth: int = 8
    """Most handoffs within one step; one more fails it with HANDOFF_DEPTH_EXCEEDED."""
    max_deltas: int = 1000
    """Output deltas, and log lines, stored (and streamed) per step attempt; further ones are
    dropped (after one warning)."""
    stream_poll: float = 0.5
    """Seconds a quiet event stream waits before checking storage for events it missed."""
    advertise_address: str = ""
    """host:port at which other server processes reach this one (they pass on to it the
    commands for the executions it runs). Default: the listen address, with the host's
    address in place of 0.0.0.0. On Kubernetes, set it to the pod IP and port."""
    engine_lease: float = 10.0
    """Seconds a replica's row lasts: with several processes on one database, the others
    take over a process's executions this long after it stopped renewing its row (at once
    if that process is gone from the same host, or left at shutdown)."""
    metrics_listen: str = ""
    """host:port for Prometheus metrics over HTTP (e.g. 0.0.0.0:9464); empty: off."""
    http_listen: str = ""
    """host:port for the HTTP/JSON API (e.g. 0.0.0.0:8080; port 0 picks one); empty: off."""
    auth_tokens: str = ""
    """Turns auth on: `token=role,token=role` or `@file` (one `token role` per line); roles
    are reader, operator, worker, admin. Empty: no auth."""
    tls_cert: str = ""
    """PEM certificate chain: with tls_key, serve TLS instead of plaintext."""
    tls_key: str = ""
    """PEM private key of tls_cert."""
    tls_client_ca: str = ""
    """PEM CA bundle: with tls_cert and tls_key, require client certificates signed by it
    (mutual TLS). Alone it is refused: it would not turn TLS on."""
    python_path: str = ""
    """Directories (os.pathsep-separated) to import `python` agents' modules from, besides
    the installed packages: the server then finds them whatever its working directory."""
    python_agent_modules: str = "baton_server.agents"
    """Modules whose functions `python` agents may name, comma-separated (a module allows
    its submodules too); `*` allows any importable module. Agent definitions come from
    callers (the operator role): list only modules written to be agents."""
    agent_secret_env: str = ""
    """Environment variables `openai` agents may take their API key from, comma-separated;
    `NAME=https://host/prefix` also binds NAME to endpoints under that URL (repeat NAME for
    several). BATON_* variables are never allowed. Empty: agents get no secrets."""
    agent_urls: str = ""
    """URL prefixes agents may reach through the server's shared HTTP client (`openai`
    agents' base_url, the `http_request` built-in, async agents' ctx.http), comma-separated
    (e.g. https://api.openai.com/v1); empty: any http(s) URL."""
    shutdown_grace: float = 10.0
    """Seconds SIGTERM waits for in-flight RPCs before cancelling them."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest request or response message; larger ones fail with RESOURCE_EXHAUSTED."""
    max_output_bytes: int = 1024 * 1024
    """Largest step output an agent may return (as JSON); larger fails the attempt with
    OUTPUT_TOO_LARGE, so that executions stay readable within max_message_bytes."""
    compress_threshold: int = 1024
    """Stored payloads larger than this many bytes are zstd-compressed."""
    idempotency_ttl: float = 24 * 3600.0
    """Seconds a `request_id` is remembered."""
    retention: float = 0.0
    """Seconds after its end an execution is deleted, with its event log; 0 keeps all."""
    log_level: str = "INFO"
    """Python logging level."""
    log_format: str = "json"
    """`json` (one object per line) or `text`."""

    @classmethod
    def load(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Builds settings from defaults, then the environment, then flags (last wins)."""
        environ = os.environ if environ is None else environ
        settings = cls()
        from_env: dict[str, Any] = {
            f.name: _coerce(f.type, environ[f"BATON_{f.name.upper()}"], f.name)
            for f in fields(cls)
            if f"BATON_{f.name.upper()}" in environ
        }
        settings = replace(settings, **from_env)
        parser = argparse.ArgumentParser(
            prog="python -m baton_server", description="Run the Baton gRPC server."
        )
        for f in fields(cls):
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                default=None,
                metavar=f.name.upper(),
                help=f"(env BATON_{f.name.upper()}; default {getattr(settings, f.name)!r})",
            )
        args = parser.parse_args(list(argv) if argv is not None else [])
        from_flags: dict[str, Any] = {
            f.name: _coerce(f.type, getattr(args, f.name), f.name)
            for f in fields(cls)
            if getattr(args, f.name) is not None
        }
        settings = replace(settings, **from_flags)
        settings.check()
        return replace(settings, sqlite_synchronous=settings.sqlite_synchronous.upper())

    def check(self) -> None:
        """Refuses settings that cannot work, before anything is opened: prints why and
        exits with status 2 (like a bad command line)."""
        problems = []
        if self.retention < 0:
            problems.append("retention must be 0 (keep all) or a number of seconds")
        if self.sqlite_synchronous.upper() not in ("FULL", "NORMAL"):
            problems.append("sqlite_synchronous must be FULL or NORMAL")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("TLS needs both tls_cert and tls_key (BATON_TLS_CERT, BATON_TLS_KEY)")
        if self.tls_client_ca and not (self.tls_cert and self.tls_key):
            problems.append(
                "tls_client_ca (mutual TLS) needs tls_cert and tls_key: without them the "
                "server would serve plaintext"
            )
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, name)
            if path and not os.access(path, os.R_OK):
                problems.append(f"{name}: cannot read {path!r}")
        if self.http_listen and not re.fullmatch(r"[^:]*:\d{1,5}", self.http_listen):
            problems.append("http_listen must be host:port (e.g. 0.0.0.0:8080)")
        if self.max_message_bytes < 64 * 1024:
            problems.append("max_message_bytes must be at least 65536")
        try:
            AgentPolicy.parse(self.python_agent_modules, self.agent_secret_env, self.agent_urls)
        except PolicySettingError as exc:
            problems.append(str(exc))
        if problems:
            for problem in problems:
                print(f"baton: {problem}", file=sys.stderr)
            raise SystemExit(2)


def _coerce(type_name: object, raw: str, name: str) -> object:
    """Turns a string from the environment or a flag into the field's type."""
    try:
        if type_name in ("int", int):
            return int(raw)
        if type_name in ("float", float):
            return float(raw)
    except ValueError:
        print(f"baton: setting {name} must be a number, got {raw!r}", file=sys.stderr)
        raise SystemExit(2) from None
    return raw
