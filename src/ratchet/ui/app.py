"""The dashboard's web application: pages, JSON endpoints, server-sent events, the guard.

Pages are one HTML shell; ``static/app.js`` draws each page from the JSON
endpoints, so a table of 10,000 rows is rendered in the browser (only the
rows in view) instead of being paginated by the server. Every endpoint
reads through ``data.StudyData`` and so never writes anything, but the
steering ones (``steer``: a note, stop / pause / resume), which need the
page's write token even on loopback.

Safety (``Guard``): on the default loopback address requests must name a
loopback host (a page on another site cannot reach the dashboard through
DNS rebinding); on any other address every request needs the token, given
once as ``?token=`` (then kept in an HttpOnly, SameSite=Strict cookie) or as
an ``Authorization: Bearer`` header.
"""

from __future__ import annotations

import html
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..store import queries
from ..study import Study
from .data import StudyData, chart, dumps, lineage, overview
from .steer import steer_routes

__all__ = ["create_app", "Guard", "COOKIE", "LOOPBACK_HOSTS"]

COOKIE = "ratchet_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # binding one of these needs no token
POLL_S = 0.25  # how often the event stream looks at the ledger
LIVE_S = 1.0  # how often it sends log tails while something runs
PAGES = ("/", "/experiments", "/experiments/{exp_id:int}", "/lineage", "/live")


def create_app(study: Study, *, tag: str | None = None, token: str | None = None) -> Starlette:
    """The dashboard for ``study``; ``tag`` is the tag shown first (default: the most recent,
    the newest experiment's, as ``status`` and ``report`` choose)."""
    data = StudyData(study)
    here = resources.files("ratchet.ui")
    shell = (here / "templates" / "index.html").read_text(encoding="utf-8")
    shell = shell.replace("{{title}}", html.escape(f"{study.name} · ratchet"))
    write_token = token or secrets.token_urlsafe(24)  # changes need it even on loopback
    shell = shell.replace("{{write_token}}", write_token)

    def default_tag(request: Request) -> str | None:
        asked = request.query_params.get("tag")
        if asked == "*":
            return None
        if asked:
            return asked
        if tag in data.tags():
            return tag
        return queries.chosen_tag(data.experiments(), None, study.root)  # the most recent

    async def page(_request: Request) -> Response:
        return Response(shell, media_type="text/html", headers={**_NO_STORE, **_PAGE_HEADERS})

    async def api_tags(request: Request) -> Response:
        tags = await anyio.to_thread.run_sync(data.tags)
        return _json({"tags": tags, "default": default_tag(request), "study": study.name,
                      "metric": study.metric.name, "goal": study.metric.goal})  # fmt: skip

    async def api_overview(request: Request) -> Response:
        chosen = default_tag(request)
        body = await anyio.to_thread.run_sync(lambda: _overview(data, study, chosen))
        return _json({**body, "tag": chosen})

    async def api_experiments(request: Request) -> Response:
        full = request.query_params.get("fields") != "table"
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            return _json({"error": f"since={since!r} is not an experiment id"}, 400)
        body = await anyio.to_thread.run_sync(
            lambda: data.rows_json(
                request.query_params.get("tag") or None, full=full, since=int(since)
            )
        )
        return Response(body, media_type="application/json", headers=_NO_STORE)

    async def api_experiment(request: Request) -> Response:
        exp_id = request.path_params["exp_id"]
        body = await anyio.to_thread.run_sync(lambda: data.detail(exp_id))
        if body is None:
            return _json({"error": f"no experiment #{exp_id} in this study"}, 404)
        return _json(body)

    async def api_log(request: Request) -> Response:
        exp_id, name = request.path_params["exp_id"], request.path_params["name"]
        text = await anyio.to_thread.run_sync(lambda: data.log_text(exp_id, name))
        if text is None:
            return PlainTextResponse(f"experiment #{exp_id} has no log {name!r}", 404)
        return PlainTextResponse(text, headers=_NO_STORE)

    async def api_chart(request: Request) -> Response:
        chosen = default_tag(request)
        body = await anyio.to_thread.run_sync(
            lambda: chart(data.of_tag(chosen), study.metric.goal)
        )
        return _json({**body, "tag": chosen, "metric_name": study.metric.name})

    async def api_lineage(request: Request) -> Response:
        chosen = default_tag(request)
        nodes = await anyio.to_thread.run_sync(lambda: lineage(data.of_tag(chosen)))
        return _json({"tag": chosen, "nodes": nodes})

    async def api_live(request: Request) -> Response:
        chosen = request.query_params.get("tag") or None
        return _json({"running": await anyio.to_thread.run_sync(lambda: data.running(chosen))})

    async def api_events(request: Request) -> Response:
        chosen = request.query_params.get("tag") or None
        return StreamingResponse(
            _events(data, chosen), media_type="text/event-stream", headers=_NO_STORE
        )

    static = StaticFiles(directory=str(Path(str(here)) / "static"))
    routes = [Route(p, page) for p in PAGES] + [
        Route("/api/tags", api_tags),
        Route("/api/overview", api_overview),
        Route("/api/experiments", api_experiments),
        Route("/api/experiments/{exp_id:int}", api_experiment),
        Route("/api/experiments/{exp_id:int}/logs/{name:path}", api_log),
        Route("/api/chart", api_chart),
        Route("/api/lineage", api_lineage),
        Route("/api/live", api_live),
        Route("/api/events", api_events),
        *steer_routes(study, write_token),
        Mount("/static", static, name="static"),
    ]
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Decode and serialize the finished rows once before serving: the first page load
        # then costs what every later one does (a long study's ledger takes a moment here).
        await anyio.to_thread.run_sync(lambda: data.rows_json(None, full=False))
        yield
        data.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(Guard, token=token)
    return app


_NO_STORE = {"Cache-Control": "no-store"}
# Descriptions, reasons and logs come from proposers and candidate code: the pages escape
# them, and the policy forbids any script but the packaged one should an escape be missed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json", headers=_NO_STORE)


def _overview(data: StudyData, study: Study, tag: str | None) -> dict[str, Any]:
    body = overview(study, data.of_tag(tag), time.time())
    body["runner_pid"] = data.runner_pid(tag) if tag else None
    return body


async def _events(data: StudyData, tag: str | None) -> AsyncIterator[str]:
    """``ledger`` whenever a row, sample or outcome is added; ``live`` tails while running."""
    yield "retry: 1000\n\n"
    last: tuple[int, ...] | None = None
    running: list[dict[str, Any]] = []
    waited = 0.0
    while True:
        version = await anyio.to_thread.run_sync(data.version)
        changed = version != last
        if changed:
            last = version
            yield f"event: ledger\ndata: {dumps({'version': list(version)}).decode()}\n\n"
        if changed or (running and waited >= LIVE_S):  # idle: one tiny query per poll
            running = await anyio.to_thread.run_sync(lambda: data.running(tag))
            yield f"event: live\ndata: {dumps({'running': running}).decode()}\n\n"
            waited = 0.0
        await anyio.sleep(POLL_S)
        waited += POLL_S


class Guard:
    """Refuse requests without the token (beyond loopback) or with a foreign Host (loopback)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is None:
            if _host_name(headers.get("host", "")) not in LOOPBACK_HOSTS:
                await _deny(403, "this dashboard answers only to 127.0.0.1 or localhost")(
                    scope, receive, send
                )
                return
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self._valid(query.get("token")):
            await self._remember(scope, query)(scope, receive, send)
            return
        if self._valid(_cookie(headers.get("cookie", ""))) or self._valid(
            headers.get("authorization", "").removeprefix("Bearer ").strip()
        ):
            await self.app(scope, receive, send)
            return
        await _deny(401, "token required — open the URL `ratchet ui` printed")(
            scope, receive, send
        )

    def _valid(self, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(str(given), str(self.token))

    def _remember(self, scope: Scope, query: dict[str, str]) -> Response:
        """Set the cookie and send the browser to the same address without the token in it."""
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        target = scope["path"] + (f"?{rest}" if rest else "")
        response = Response(status_code=303, headers={"Location": target, **_NO_STORE})
        response.set_cookie(COOKIE, str(self.token), httponly=True, samesite="strict")
        return response


def _deny(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status, headers=_NO_STORE)


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:  # a malformed Cookie header is simply no token
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None


def _host_name(host: str) -> str:
    """``127.0.0.1:8765`` → ``127.0.0.1``; ``[::1]:8765`` → ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
