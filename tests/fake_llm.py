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
        if model == "endless":  # an answer that never ends (one endless SSE line if streamed)
            self._endless(b"data: " if body.get("stream") else b'{"choices": "')
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
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            },
        )

    def do_GET(self) -> None:
        """GET /v1/endless: a text answer that never ends."""
        self._endless(b"")

    def _endless(self, start: bytes) -> None:
        """Sends `start` then x's, with no length, until the client hangs up (or 64 MiB)."""
        self.send_response(200)
        self.send_header(
            "Content-Type", "text/event-stream" if start == b"data: " else "text/plain"
        )
        self.end_headers()
        try:
            self.wfile.write(start)
            for _ in range(1024):
                self.wfile.write(b"x" * 65536)
        except OSError:
            pass  # the client stopped reading

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


Answer = dict[str, Any]
"""What a scripted model answers: {"content": str} and/or {"tool_calls": [(id, name,
arguments dict)]}, with optional "usage": (prompt, completion); or {"status": 429,
"retry_after": "1"} for an error."""


class ScriptedLLM(BaseHTTPRequestHandler):
    """POST /v1/chat/completions answered by `scripts[model](request body)`: tool calls,
    streamed deltas (tool-call arguments in fragments), usage, and errors with Retry-After.
    `hold` makes requests wait (while it is set) before they are answered."""

    scripts: ClassVar[dict[str, Any]] = {}
    requests: ClassVar[list[dict[str, Any]]] = []
    hold: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ScriptedLLM.requests.append(body)
        answer: Answer = ScriptedLLM.scripts[body["model"]](body)
        while ScriptedLLM.hold.is_set():
            time.sleep(0.01)
        if "status" in answer:
            headers = {"Retry-After": answer["retry_after"]} if "retry_after" in answer else {}
            FakeOpenAI._send(self, answer["status"], {"error": {"message": "no"}}, headers)  # type: ignore[arg-type]
            return
        prompt, completion = answer.get("usage", (10, 5))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in answer.get("tool_calls", ())
        ]
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
            if calls:
                message["tool_calls"] = calls
            FakeOpenAI._send(
                self,  # type: ignore[arg-type]
                200,
                {"choices": [{"message": message, "finish_reason": finish}], "usage": usage},
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunks: list[dict[str, Any]] = []
        text = answer.get("content") or ""
        for k in range(0, len(text), 4):
            chunks.append({"content": text[k : k + 4]})
        for index, call in enumerate(calls):
            arguments = call["function"]["arguments"]
            head = {
                "index": index,
                "id": call["id"],
                "function": {"name": call["function"]["name"]},
            }
            chunks.append({"tool_calls": [head]})
            for k in range(0, len(arguments), 5):
                piece = {"index": index, "function": {"arguments": arguments[k : k + 5]}}
                chunks.append({"tool_calls": [piece]})
        for delta in chunks:
            self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        self._event({"choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, chunk: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


def turn_of(body: dict[str, Any]) -> int:
    """Which model turn a request is (0 for the first): the assistant messages before it."""
    return sum(1 for m in body["messages"] if m["role"] == "assistant")


def tool_results(body: dict[str, Any]) -> dict[str, Any]:
    """The tool results in a request, by call id."""
    return {
        m["tool_call_id"]: json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"
    }


@pytest.fixture
def scripted_llm() -> Iterator[str]:
    ScriptedLLM.scripts = {}
    ScriptedLLM.requests = []
    ScriptedLLM.hold.clear()
    yield from serve(ScriptedLLM)
