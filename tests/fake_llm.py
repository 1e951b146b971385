"""A local HTTP server that speaks OpenAI chat completions (there is no internet here), as
a fixture: the model name picks the behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest


class FakeOpenAI(BaseHTTPRequestHandler):
    """POST /v1/chat/completions; the model name picks the behaviour."""

    requests: ClassVar[list[dict[str, Any]]] = []
    limited_calls: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        model = body["model"]
        user = json.loads(body["messages"][-1]["content"])
        if model == "limited" and not FakeOpenAI.limited_calls:
            FakeOpenAI.limited_calls.append(time.monotonic())
            self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
            return
        if model == "limited":
            FakeOpenAI.limited_calls.append(time.monotonic())
        if model == "broken":
            self._send(400, {"error": {"message": "bad model"}})
            return
        reply = (
            json.dumps({"plan": f"plan for {user['request']}", "steps": 3})
            if model in ("json", "limited")
            else f"Hello, {user['request']}!"
        )
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for token in reply.split(" "):
                chunk = {"choices": [{"delta": {"content": token + " "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self._send(
            200,
            {
                "choices": [{"message": {"role": "assistant", "content": reply}}],
                "usage": {"total_tokens": 7},
            },
        )

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves `handler` on a free port in a thread; yields its base URL (`.../v1`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_openai() -> Iterator[str]:
    FakeOpenAI.requests = []
    FakeOpenAI.limited_calls = []
    yield from serve(FakeOpenAI)
