"""The dashboard's only writes: a note, and stop / pause / resume (``POST /api/steer/...``).

Every other endpoint reads. These change what a running study does, so they
ask more of a request than the ``Guard`` does:

- the write token, in an ``X-Ratchet-Token`` header, even on loopback (where
  reading needs none). The page gets it from a ``<meta>`` tag of the shell;
  another site's page cannot read that (same-origin policy), and the
  ``Guard``'s Host check stops it from reaching the shell by DNS rebinding;
- a JSON body (``Content-Type: application/json``), which a cross-site form
  cannot send and a cross-site ``fetch`` cannot send without a CORS
  preflight this app never answers;
- an ``Origin``, when the browser sends one, equal to the address served.

The actions are the CLI's (``run.steering.add_note``, ``run.control``), so
the loop sees a note or a request from the dashboard exactly as from
``ratchet note`` / ``stop`` / ``pause`` / ``resume``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import RatchetError
from ..run import control
from ..run.steering import add_note
from ..run.workspace import STATE_DIR, check_tag, lock_holder
from ..study import Study

__all__ = ["TOKEN_HEADER", "steer_routes"]

TOKEN_HEADER = "x-ratchet-token"
ACTIONS = ("stop", "pause", "resume")


def steer_routes(study: Study, write_token: str) -> list[Route]:
    """``POST /api/steer/note`` ``{"tag", "text"}`` and ``/api/steer/{stop|pause|resume}``."""

    async def note(request: Request) -> Response:
        body = await _checked(request, write_token)
        if isinstance(body, Response):
            return body
        try:
            tag = check_tag(str(body.get("tag") or "main"))
            made = await anyio.to_thread.run_sync(
                lambda: add_note(study, tag, str(body.get("text") or ""))
            )
        except RatchetError as exc:
            return _error(400, str(exc))
        return JSONResponse({"id": made.id, "tag": made.tag, "text": made.text})

    async def act(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _error(404, f"no action {action!r}; use one of {', '.join(ACTIONS)}")
        body = await _checked(request, write_token)
        if isinstance(body, Response):
            return body
        try:
            tag = check_tag(str(body.get("tag") or "main"))
        except RatchetError as exc:
            return _error(400, str(exc))
        state = study.root / STATE_DIR
        if action == "resume":
            control.clear(state, tag)
            return JSONResponse({"tag": tag, "state": "running"})
        if lock_holder(study, tag) is None:
            return _error(409, f"tag {tag!r} is not running — nothing to {action}")
        control.request(state, tag, action)
        return JSONResponse({"tag": tag, "state": "stopping" if action == "stop" else "paused"})

    return [
        Route("/api/steer/note", note, methods=["POST"]),
        Route("/api/steer/{action}", act, methods=["POST"]),
    ]


async def _checked(request: Request, write_token: str) -> dict[str, Any] | Response:
    """The request's JSON object, or the refusal (403 token/origin, 415 type, 400 body)."""
    given = request.headers.get(TOKEN_HEADER, "")
    if not given or not secrets.compare_digest(given, write_token):
        return _error(403, "a change needs the page's write token — reload the dashboard")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        return _error(403, f"a change from another site ({origin}) is refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "send the change as JSON (Content-Type: application/json)")
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    return body


def _error(status: int, text: str) -> Response:
    return JSONResponse({"error": text}, status, headers={"Cache-Control": "no-store"})
