"""The harness a fixed evaluator uses to call candidate code and to report the metric.

The rule this module exists for: **the evaluation never runs, imports or
trusts anything the candidate wrote, except the outputs it declares.** An
evaluator that must call the candidate's functions (time a sort, score a
packing) does not ``import solver``; it asks for a proxy::

    from ratchet.evaluation import load_candidate, report

    solver = load_candidate("solver.py", timeout=10)
    started = time.perf_counter()
    result = solver.sort([3, 1, 2])          # runs in another process
    elapsed = time.perf_counter() - started
    if result != [1, 2, 3]:
        raise SystemExit("wrong answer")
    report(runtime_ms=elapsed * 1000)

``load_candidate`` copies the file (or package directory) to a private
directory and starts a separate interpreter (``python -I``: no environment
variables, no user site, no script directory on ``sys.path``) that imports
it from there; the evaluator's own ``sys.path`` never holds it. Each call
crosses as one JSON line each way (never pickle: unpickling runs code), with
a per-call time limit after which the worker's whole process group is
killed. An exception in the candidate comes back as ``CandidateError``
(``kind`` is the remote type name); a timeout as ``CandidateTimeout``; a
worker that died as ``CandidateDied``. JSON turns tuples into lists; an
argument JSON cannot carry is refused before anything is sent.

``report(name=value, ...)`` hands the metric (and any extras) to Ratchet on
a channel only the evaluator holds: a pipe whose number Ratchet passes in
``RATCHET_REPORT_FD``. On import this module takes that descriptor out of
the environment and marks it close-on-exec, so no process the evaluator
starts inherits it, and writes a hello record carrying a random key that
every later record repeats; a record without the key (a candidate that
found the pipe through ``/proc``) makes the sample a crash. From the hello
on, Ratchet ignores metric lines on the phase's output: the reported value
is the metric, whatever the candidate prints. Before the first worker
starts, the evaluator makes itself non-dumpable, so a candidate running as
the same user can neither open its descriptors through ``/proc`` nor read
its memory (a process with ``CAP_SYS_PTRACE``, e.g. root at sandbox level
``process``, still can).

Outside Ratchet (no ``RATCHET_REPORT_FD``), ``report`` prints ``name: value``
lines, so ``python evaluate.py`` by hand shows its result.

This module imports only the standard library: it runs in the sealed
evaluator at every evaluation and must start in milliseconds.
"""

from __future__ import annotations

import json
import math
import os
import re
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

__all__ = [
    "REPORT_FD_ENV",
    "CandidateError",
    "CandidateTimeout",
    "CandidateDied",
    "Candidate",
    "load_candidate",
    "report",
]

REPORT_FD_ENV = "RATCHET_REPORT_FD"
_WORKER = Path(__file__).with_name("_candidate_worker.py")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_RECORD_MAX = 4000  # below PIPE_BUF: a record is written atomically, never interleaved
_PR_SET_DUMPABLE = 4
_STARTUP_S = 60.0  # a worker that cannot import the candidate within this is dead


class CandidateError(Exception):
    """A call into the candidate failed; ``kind`` names the remote exception's type."""

    def __init__(self, message: str, *, kind: str = "", function: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.function = function


class CandidateTimeout(CandidateError):
    """The call ran past its time limit; the worker and everything it started were killed."""


class CandidateDied(CandidateError):
    """The worker process is gone (it exited, crashed, or was killed after a timeout)."""


# --- the report channel ------------------------------------------------------------------


def _claim_channel() -> tuple[int | None, str]:
    """Take the report pipe out of the environment, unshareable; say hello on it."""
    raw = os.environ.pop(REPORT_FD_ENV, None)
    key = secrets.token_hex(16)
    if raw is None or not raw.isdigit():
        return None, key
    fd = int(raw)
    try:
        os.set_inheritable(fd, False)
        _write_record(fd, {"hello": key, "pid": os.getpid()})
    except OSError:
        return None, key
    return fd, key


def _write_record(fd: int, record: dict) -> None:
    data = (json.dumps(record, allow_nan=True) + "\n").encode()
    if len(data) > _RECORD_MAX:
        raise ValueError(f"report too large ({len(data)} bytes): report fewer values per call")
    try:
        os.write(fd, data)
    except BlockingIOError:  # Ratchet made the pipe non-blocking: a full pipe never hangs us
        raise RuntimeError("report(): more than 64 KB of reports; report each value once") from None


_CHANNEL, _KEY = _claim_channel()


def report(**values: float) -> None:
    """Report the metric (and extras) to Ratchet: ``report(mse=0.01, train_seconds=3.2)``.

    Names follow the metric protocol (a letter or ``_``, then letters,
    digits, ``_ . - /``); values are numbers (``nan``/``inf`` allowed: a
    non-finite metric is a crash, as always). The last value of a name wins.
    """
    clean: dict[str, float] = {}
    for name, value in values.items():
        if not _NAME.match(name):
            raise ValueError(f"report(): {name!r} is not a metric name")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"report(): {name} must be a number, got {type(value).__name__}")
        clean[name] = float(value)
    if not clean:
        raise TypeError("report() needs at least one name=value")
    if _CHANNEL is None:
        for name, value in clean.items():
            print(f"{name}: {value!r}" if math.isfinite(value) else f"{name}: {value}")
        return
    _write_record(_CHANNEL, {"key": _KEY, "report": clean})


def _make_undumpable() -> None:
    """No same-user process may open our descriptors via /proc or read our memory."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: the import costs milliseconds every report-only evaluator saves

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --- the candidate proxy -----------------------------------------------------------------


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
        if name.startswith("__"):
            raise AttributeError(name)

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


def load_candidate(path: str | os.PathLike[str], *, timeout: float = 60.0) -> Candidate:
    """The candidate module at ``path`` (a ``.py`` file or a package directory), as a proxy.

    ``path`` is relative to the evaluator's directory (the sealed directory,
    where Ratchet copies the declared ``[evaluate] inputs``: list the
    editable file there). ``timeout`` is the limit of each call, in seconds.
    A symlink is refused: the candidate's code is a file it declared, not a
    pointer to somewhere else.
    """
    source = Path(path)
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if source.is_symlink():
        raise CandidateError(f"{source} is a symlink; the candidate must be a plain file")
    if not (source.is_file() or (source.is_dir() and (source / "__init__.py").is_file())):
        raise CandidateError(
            f"{source} not found — list it in [evaluate] inputs so it is copied next to the"
            " evaluator"
        )
    return Candidate(source, timeout)
