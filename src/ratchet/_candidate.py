"""The candidate's proxy behind ``ratchet.evaluation.load_candidate`` (see that module).

Imported only when an evaluator loads a candidate: starting a worker needs
``subprocess`` and friends, which a report-only evaluator never pays for.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .evaluation import REPORT_FD_ENV, CandidateDied, CandidateError, CandidateTimeout

__all__ = ["Candidate"]

_WORKER = Path(__file__).with_name("_candidate_worker.py")
_PR_SET_DUMPABLE = 4
_STARTUP_S = 60.0  # a worker that cannot import the candidate within this is dead


def _make_undumpable() -> None:
    """No same-user process may open our descriptors via /proc or read our memory."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Candidate:
    """A candidate module in its own process; ``candidate.f(*args)`` calls ``f`` there."""

    def __init__(self, source: Path, timeout: float) -> None:
        self._timeout = timeout
        self._dead: str | None = None
        self._buffer = b""
        self._private = Path(tempfile.mkdtemp(prefix="ratchet-candidate-"))
        copy = self._private / source.name
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copyfile(source, copy)
        module = source.name.removesuffix(".py")
        _make_undumpable()
        reply_r, reply_w = os.pipe()
        argv = [sys.executable, "-I", "-u", str(_WORKER), str(self._private), module, str(reply_w)]
        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=sys.stderr.fileno(),  # candidate prints never reach our stdout
                cwd=self._private,
                env=_worker_env(),
                pass_fds=(reply_w,),
                start_new_session=True,
            )
        finally:
            os.close(reply_w)
        self._replies = reply_r
        ready = self._receive("", None, _STARTUP_S)
        if "error" in ready:
            self.close()
            raise _remote_error(ready["error"], f"loading {source.name}")

    def __getattr__(self, name: str) -> Any:
        """``candidate.f``: a function that calls ``f`` in the worker (public names only)."""
        if name.startswith("_"):
            raise AttributeError(f"{name}: only the candidate's public functions can be called")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        call.__name__ = name
        return call

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        if self._dead:
            raise CandidateDied(f"cannot call {name}: {self._dead}", function=name)
        call_id = secrets.token_hex(8)
        try:
            request = json.dumps({"id": call_id, "name": name, "args": args, "kwargs": kwargs})
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"an argument to candidate.{name} cannot cross as JSON ({exc}) — pass lists,"
                " dicts with string keys, strings, numbers, booleans or None"
            ) from None
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(request.encode() + b"\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._gone("the candidate's process exited")
            raise CandidateDied(f"cannot call {name}: {self._dead}", function=name) from None
        reply = self._receive(name, call_id, self._timeout)
        if "error" in reply:
            raise _remote_error(reply["error"], name)
        return reply.get("result")

    def _receive(self, name: str, call_id: str | None, timeout: float) -> dict:
        """The next reply line within ``timeout``; kill the worker when it is late."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready = select.select([self._replies], [], [], max(0.0, remaining))[0]
            if not ready:
                self._kill(f"killed after a call ran past {timeout:g} s")
                raise CandidateTimeout(
                    f"candidate.{name or 'load'} ran past its {timeout:g} s limit and was killed",
                    kind="Timeout",
                    function=name,
                )
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                code = self._gone("the candidate's process exited")
                raise CandidateDied(
                    f"the candidate's process exited (status {code}) during"
                    f" {name or 'loading'}",
                    function=name,
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("id") != call_id:
            self._kill("it answered out of turn")
            raise CandidateError(
                f"the candidate's process answered out of turn during {name or 'loading'}",
                kind="Protocol",
                function=name,
            )
        return reply

    def _kill(self, why: str) -> None:
        """SIGKILL the worker's whole process group (it is a session of its own)."""
        if self._dead is None:
            self._dead = why
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except OSError:
            pass
        self._process.wait()
        self._cleanup()

    def _gone(self, why: str) -> int | None:
        self._kill(why)
        return self._process.returncode

    def _cleanup(self) -> None:
        for stream in (self._process.stdin,):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self._replies >= 0:
            os.close(self._replies)
            self._replies = -1
        shutil.rmtree(self._private, ignore_errors=True)

    def close(self) -> None:
        """Stop the worker (and anything it started); calls after this raise CandidateDied."""
        if self._dead is None:
            self._kill("closed")

    def __enter__(self) -> Candidate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worker_env() -> dict[str, str]:
    """The evaluator's environment minus the channel (it is gone already; belt and braces)."""
    env = dict(os.environ)
    env.pop(REPORT_FD_ENV, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _remote_error(error: object, function: str) -> CandidateError:
    info = error if isinstance(error, dict) else {}
    kind = str(info.get("type", "Error"))[:100]
    message = str(info.get("message", ""))[:2000]
    return CandidateError(f"{kind}: {message}" if message else kind, kind=kind, function=function)
