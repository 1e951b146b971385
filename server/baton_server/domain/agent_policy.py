"""What an administrator lets agent definitions reach on this server.

An agent definition is data from a caller (an `operator` may write one). It never reaches
the server's own settings, secrets or files beyond what the administrator allowed:
- a `python` agent may only name a function in an allowed module (`python_agent_modules`);
- an `openai` agent may only take its API key from an allowed environment variable
  (`agent_secret_env`), and, where the administrator bound that variable to an endpoint,
  only send it to that endpoint. Baton's own `BATON_*` variables are never allowed;
- agents may only reach URLs under the allowed ones (`agent_urls`) through the server's
  shared HTTP client (`openai` agents, the `http_request` built-in, `ctx.http`), when the
  administrator set any: so that agents cannot read the server's network (a cloud
  metadata endpoint, its metrics port).
Both are checked when an agent is written and again before every attempt, so narrowing the
settings takes effect on agents already stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from baton_server.domain.failures import ENDPOINT_NOT_ALLOWED
from baton_server.limits import shorten

OWN_PREFIX = "BATON_"
ANY_MODULE = "*"


class PolicySettingError(ValueError):
    """A policy setting that cannot be used."""


class PolicyViolationError(Exception):
    """An agent tried to reach what the policy does not allow; fails its attempt for good."""

    def __init__(self, failure_type: str, message: str) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.message = message


@dataclass(frozen=True)
class AgentPolicy:
    """Allowed Python modules and secret environment variables (with their endpoints)."""

    python_modules: tuple[str, ...] = ("baton_server.agents",)
    secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Variable name -> the base URL prefixes it may be sent to (empty: any endpoint)."""
    endpoints: tuple[str, ...] = ()
    """URL prefixes agents may reach through the shared HTTP client (empty: any)."""

    @classmethod
    def parse(cls, python_modules: str, secret_env: str, endpoints: str = "") -> AgentPolicy:
        """From the settings: `mod,pkg.sub` (or `*`), `NAME,NAME=https://host/prefix` and
        `https://host/prefix,...`."""
        modules = tuple(m.strip() for m in python_modules.split(",") if m.strip())
        secrets: dict[str, list[str]] = {}
        for entry in secret_env.split(","):
            name, _, url = entry.strip().partition("=")
            name = name.strip()
            if not name:
                continue
            if name.upper().startswith(OWN_PREFIX):
                raise PolicySettingError(
                    f"agent_secret_env may not name {name}: Baton's own settings are never "
                    "handed to agents"
                )
            secrets.setdefault(name, [])
            if url.strip():
                secrets[name].append(url.strip())
        urls = tuple(u.strip() for u in endpoints.split(",") if u.strip())
        return cls(modules, {k: tuple(v) for k, v in secrets.items()}, urls)

    def entry_point_problem(self, entry_point: str) -> str | None:
        """Why a `python` agent may not use `entry_point`, or None if it may."""
        module, _, attribute = entry_point.partition(":")
        if any(part.startswith("_") for part in [*module.split("."), *attribute.split(".")]):
            return "may not name private or special attributes (starting with '_')"
        if ANY_MODULE in self.python_modules:
            return None
        if any(module == m or module.startswith(m + ".") for m in self.python_modules):
            return None
        allowed = ", ".join(self.python_modules) or "none"
        return (
            f"module {shorten(module)!r} is not among the modules an administrator allowed "
            f"for python agents (BATON_PYTHON_AGENT_MODULES: {allowed})"
        )

    def endpoint_problem(self, url: str) -> str | None:
        """Why an agent may not reach `url`, or None if it may."""
        if not self.endpoints or any(_within(url, u) for u in self.endpoints):
            return None
        return (
            f"{shorten(url)!r} is not under the URLs an administrator allowed agents to "
            f"reach (BATON_AGENT_URLS: {', '.join(self.endpoints)})"
        )

    async def check_request(self, request: Any) -> None:
        """An httpx request hook for the shared client: refuses URLs outside the policy
        (each redirect is a request of its own, and is checked too)."""
        problem = self.endpoint_problem(str(request.url))
        if problem is not None:
            raise PolicyViolationError(ENDPOINT_NOT_ALLOWED, problem)

    def secret_problem(self, name: str, base_url: str) -> str | None:
        """Why an `openai` agent may not send variable `name` to `base_url`, or None."""
        if name.upper().startswith(OWN_PREFIX) or name not in self.secrets:
            allowed = ", ".join(sorted(self.secrets)) or "none"
            return (
                f"{shorten(name)} is not an environment variable an administrator allowed "
                f"agents to use (BATON_AGENT_SECRET_ENV: {allowed})"
            )
        endpoints = self.secrets[name]
        if endpoints and not any(_within(base_url, prefix) for prefix in endpoints):
            return (
                f"{name} may only be sent to {', '.join(endpoints)}, not to {shorten(base_url)!r}"
            )
        return None

    def secret(self, name: str, base_url: str) -> str:
        """The value of an allowed secret variable ('' when unset). Raises PermissionError
        when it is not allowed for this endpoint."""
        problem = self.secret_problem(name, base_url)
        if problem is not None:
            raise PermissionError(problem)
        return os.environ.get(name, "")


def _within(url: str, prefix: str) -> bool:
    """True when `url` is `prefix` or below it, on the same scheme, host and port."""
    url, prefix = url.rstrip("/"), prefix.rstrip("/")
    return url == prefix or url.startswith(prefix + "/")
