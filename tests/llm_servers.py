"""A real HTTP server on 127.0.0.1 that speaks the two chat protocols with scripted answers.

``ScriptedLLM`` serves, on an ephemeral port in a thread:

- ``POST /v1/chat/completions`` (OpenAI's chat-completions protocol),
- ``POST /v1/messages`` (Anthropic's Messages API),
- ``GET /v1/models`` (both shapes; the Anthropic one when the request
  carries an ``anthropic-version`` header).

Each chat request takes the next step of the script: an ``Answer`` (text and
token counts), a ``Fail`` (an HTTP status and message) or a ``Hang`` (no
answer until the server closes, for client timeouts). A step may also be a
function of the request body that returns a step. When the script runs out,
the last step repeats. Every request body is recorded in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "Fail", "Hang", "ScriptedLLM", "last_user_text"]


@dataclass(frozen=True)
class Answer:
    text: str
    input_tokens: int = 100
    output_tokens: int = 20


@dataclass(frozen=True)
class Fail:
    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Send nothing until the server shuts down."""


Step = Answer | Fail | Hang | Callable[[dict[str, Any]], "Answer | Fail | Hang"]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message of a request (either protocol)."""
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return content


class ScriptedLLM:
    """The server; use as a context manager. ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, script: list[Step], model: str = "test-model") -> None:
        self.script = list(script)
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The chat requests' bodies (model listings left out)."""
        return [r for r, p in zip(self.requests, self.paths, strict=True) if p != "/v1/models"]

    def _next(self, body: dict[str, Any]) -> Answer | Fail | Hang:
        with self._lock:
            step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(body) if callable(step) else step

    def _record(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.paths.append(path)
            self.requests.append(body)
            self.headers.append(headers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output clean

            def do_GET(self) -> None:  # noqa: N802
                server._record(self.path, {}, _lower(self.headers))
                if self.path != "/v1/models":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                model = {"id": server.model, "object": "model", "created": 0, "owned_by": "t"}
                if self.headers.get("anthropic-version"):
                    model = {
                        "type": "model",
                        "id": server.model,
                        "display_name": server.model,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                    return self._send(200, {"data": [model], "has_more": False})
                self._send(200, {"object": "list", "data": [model]})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server._record(self.path, body, _lower(self.headers))
                if self.path not in ("/v1/chat/completions", "/v1/messages"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                step = server._next(body)
                if isinstance(step, Hang):
                    server._closing.wait(timeout=60)
                    return None
                if isinstance(step, Fail):
                    error = {
                        "type": "error",
                        "error": {"type": "api_error", "message": step.message},
                    }
                    return self._send(step.status, error)
                anthropic = self.path == "/v1/messages"
                self._send(200, _anthropic(step, body) if anthropic else _openai(step, body))
                return None

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    # One request per connection: the SDK clients the tests drop close their
                    # socket at once, instead of a ResourceWarning whenever they are collected.
                    self.send_header("connection", "close")
                    self.close_connection = True
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up first

        return Handler


def _openai(step: Answer, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": step.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": step.input_tokens,
            "completion_tokens": step.output_tokens,
            "total_tokens": step.input_tokens + step.output_tokens,
        },
    }


def _anthropic(step: Answer, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": [{"type": "text", "text": step.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens},
    }


def _lower(headers: Any) -> dict[str, str]:
    """Header names in lower case (HTTP/2-style clients send them so anyway)."""
    return {name.lower(): value for name, value in headers.items()}
