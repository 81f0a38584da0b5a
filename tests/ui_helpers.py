"""A real study run by a real `ratchet run`, and a real `ratchet ui` serving it on 127.0.0.1.

Shared by the dashboard's API tests and its browser tests. The study is the
conftest's `cat value.txt` study; its replay proposals print progress lines,
so experiments have curves, keeps, discards and a crash.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import FAST_TOML, make_repo, ratchet

# Pruning off: every proposal here runs to its end, so the outcomes are fixed by the scores.
TOML = FAST_TOML.replace("[proposer]", "[prune]\nenabled = false\n\n[proposer]")

__all__ = ["Served", "build_study", "get", "proposals", "serve", "value_text"]


def value_text(score: float) -> str:
    """A value.txt that reports progress along the way, then the score."""
    steps = "".join(
        json.dumps({"progress": p, "score": round(score + (1 - p), 3)}) + "\n"
        for p in (0.25, 0.5, 0.75, 1.0)
    )
    return steps + f"score: {score}\n"


def proposals(path: Path, scores: list[float | None]) -> Path:
    """A replay file: each score becomes a proposal; None is one that prints no metric."""
    lines = []
    for n, score in enumerate(scores):
        text = "no metric here\n" if score is None else value_text(score)
        what = "break the output" if score is None else f"set the score to {score}"
        lines.append(json.dumps({"description": f"idea {n}: {what}", "edits": {"value.txt": text}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def build_study(root: Path, scores: list[float | None], tag: str = "t1") -> Path:
    """A committed study, run once over ``scores`` with the replay proposer."""
    study = make_repo(
        root / "study",
        {
            "ratchet.toml": TOML,
            "program.md": "Lower the score.\n",
            "value.txt": value_text(5.0),
            "check.sh": "echo protected\n",
        },
    )
    replay = proposals(root / "proposals.jsonl", scores)
    done = ratchet(
        "run", str(study), "--tag", tag, "--proposer", "replay", "--replay", str(replay),
        "--max-experiments", str(len(scores)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return study


@dataclass
class Served:
    """A running `ratchet ui`: its base URL (token left out) and the token, if any."""

    url: str
    token: str | None
    process: subprocess.Popen


@contextmanager
def serve(study: Path, *args: str) -> Iterator[Served]:
    """Start `ratchet ui` on a free port; yield once it answers; stop it afterwards."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ratchet", "ui", str(study), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = _first_line(process)
        url = line.split()[2]
        base, _, token = url.partition("?token=")
        served = Served(base.rstrip("/"), token or None, process)
        _wait_until_up(served)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def _first_line(process: subprocess.Popen) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("ratchet ui: http://"):
        process.kill()
        raise AssertionError(f"ratchet ui did not start: {line!r} {process.stderr.read()}")
    return line


def _wait_until_up(served: Served) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            get(served, "/api/tags")
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def get(served: Served, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``path`` (with the token as a header when the server has one): status and body."""
    headers = dict(headers or {})
    if served.token and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {served.token}"
    request = urllib.request.Request(served.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
