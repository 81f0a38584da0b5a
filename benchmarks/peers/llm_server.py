"""A scripted OpenAI-compatible chat server on 127.0.0.1, shared by the three tools.

Each ``POST .../chat/completions`` gets the text that ``answer(index, body)``
returns for the index-th chat request (0-based), so one script drives any
tool: the caller decides what each request gets and in which tool's format.
``GET .../models`` lists one model. Every chat request is recorded with its
arrival time on ``time.monotonic()``, the clock the harness uses to time the
tool it launched, so "launch → first request" and "request → next request"
are measured on one clock.

Each response leaves in one ``write`` on a socket with ``TCP_NODELAY``: a
response split over two writes without it waits ~40 ms for the client's
delayed ACK (Nagle), which would be charged to every tool's iteration.
Connections are kept alive (HTTP/1.1), as a real endpoint would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Request", "ScriptedServer"]

Answerer = Callable[[int, dict[str, Any]], str]


@dataclass(frozen=True)
class Request:
    """One chat request as the server saw it."""

    arrived: float  # time.monotonic()
    body: dict[str, Any]
    answer_chars: int


class ScriptedServer:
    """The server; a context manager. ``base_url`` ends in ``/v1``."""

    def __init__(self, answer: Answerer, model: str = "bench-model") -> None:
        self.model = model
        self.requests: list[Request] = []
        self._answer = answer
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def reset(self, answer: Answerer) -> None:
        """A new script and an empty record, for the next tool or scenario."""
        with self._lock:
            self._answer = answer
            self.requests = []

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        arrived = time.monotonic()
        with self._lock:
            index = len(self.requests)
            text = self._answer(index, body)
            self.requests.append(Request(arrived, body, len(text)))
        return {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": _tokens(body),
                "completion_tokens": len(text) // 4 + 1,
                "total_tokens": _tokens(body) + len(text) // 4 + 1,
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                if not self.path.rstrip("/").endswith("/models"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                model = {"id": server.model, "object": "model", "created": 0, "owned_by": "b"}
                return self._send(200, {"object": "list", "data": [model]})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                return self._send(200, server._chat(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    "content-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n"
                ).encode()
                try:
                    self.wfile.write(head + data)  # one write: see the module docstring
                except OSError:
                    pass  # the client gave up first

        return Handler


def _tokens(body: dict[str, Any]) -> int:
    """A rough prompt size (characters / 4): the tools only display it."""
    return sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
