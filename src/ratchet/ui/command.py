"""The ``ratchet ui`` subcommand: check the address, make the token, serve.

A dashboard process of its own: it reads the ledger read-only and serves it
until Ctrl-C. The default address is 127.0.0.1. Any other address (another
loopback address included) gets a fresh token, printed once in the URL and
required on every request: a dashboard reachable from other machines shows
the study's code and logs only to whoever holds the URL.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from pathlib import Path

from ..errors import ConfigError
from ..run.workspace import check_tag
from ..study import load_study

__all__ = ["register", "cmd_ui", "needs_token"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MISSING = "ratchet ui needs Starlette and uvicorn — install them with: pip install 'ratchetlab[ui]'"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ui", help="live dashboard in the browser (127.0.0.1 by default)")
    p.add_argument("dir", nargs="?", default=".", help="study directory (default: .)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    p.add_argument("--host", default=DEFAULT_HOST, help="any but 127.0.0.1 needs the token")
    p.add_argument("--tag", help="tag shown first (default: the latest)")
    p.set_defaults(func=cmd_ui)


def needs_token(host: str) -> bool:
    """Every address but the default loopback names needs the token."""
    from .app import LOOPBACK_HOSTS

    return host not in LOOPBACK_HOSTS


def cmd_ui(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .app import create_app
    except ImportError:
        print(MISSING, file=sys.stderr)
        return 2
    study = load_study(Path(args.dir))
    tag = check_tag(args.tag) if args.tag else None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port — use 1 to 65535, or 0 for any free")
    sock = _bind(args.host, args.port)
    token = secrets.token_urlsafe(24) if needs_token(args.host) else None
    app = create_app(study, tag=tag, token=token)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"ratchet ui: {url}  (study {study.name}; Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is one clear sentence."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"--host {host}: no such address — use an IP such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}) — choose another --port or --host"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
