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
a channel only the evaluator holds: a datagram socket whose number Ratchet
passes in ``RATCHET_REPORT_FD``. On import this module takes that
descriptor out of the environment and marks it close-on-exec, so no process
the evaluator starts inherits it, and sends a hello. The kernel stamps
every record with its sender's pid, and Ratchet accepts reports from the
process that said hello only: a record from any other process (a candidate
that got hold of the socket) makes the sample a crash. A socket cannot be
reopened through ``/proc``, and before the first worker starts the
evaluator makes itself non-dumpable, so a candidate running as the same
user can neither take its descriptors nor read its memory (a process with
``CAP_SYS_PTRACE``/``CAP_SYS_ADMIN``, e.g. root at sandbox level
``process``, still can). From the hello on, Ratchet ignores metric lines on
the phase's output: the reported value is the metric, whatever the
candidate prints.

Outside Ratchet (no ``RATCHET_REPORT_FD``), ``report`` prints ``name: value``
lines, so ``python evaluate.py`` by hand shows its result.

This module imports only ``json``, ``math`` and ``os``: it runs in the
sealed evaluator at every evaluation and must start in a millisecond; the
proxy (``_candidate.py``) is imported when a candidate is loaded.
"""

from __future__ import annotations

import json
import math
import os

TYPE_CHECKING = False  # not typing's: importing typing costs a report-only evaluator time
if TYPE_CHECKING:
    from ._candidate import Candidate

__all__ = [
    "REPORT_FD_ENV",
    "CandidateError",
    "CandidateTimeout",
    "CandidateDied",
    "load_candidate",
    "report",
]

REPORT_FD_ENV = "RATCHET_REPORT_FD"
_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789.-/")
_RECORD_MAX = 4000  # one datagram per record, well under the socket's buffer


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


def _claim_channel() -> int | None:
    """Take the report socket out of the environment, unshareable; say hello on it."""
    raw = os.environ.pop(REPORT_FD_ENV, None)
    if raw is None or not raw.isdigit():
        return None
    fd = int(raw)
    try:
        os.set_inheritable(fd, False)
        _write_record(fd, {"hello": 1})
    except OSError:
        return None
    return fd


def _write_record(fd: int, record: dict) -> None:
    data = (json.dumps(record, allow_nan=True) + "\n").encode()
    if len(data) > _RECORD_MAX:
        raise ValueError(f"report too large ({len(data)} bytes): report fewer values per call")
    try:
        os.write(fd, data)
    except BlockingIOError:  # Ratchet made the socket non-blocking: a full one never hangs us
        raise RuntimeError("report(): too many reports at once; report each value once") from None


_CHANNEL = _claim_channel()


def report(**values: float) -> None:
    """Report the metric (and extras) to Ratchet: ``report(mse=0.01, train_seconds=3.2)``.

    Names follow the metric protocol (a letter or ``_``, then letters,
    digits, ``_ . - /``); values are numbers (``nan``/``inf`` allowed: a
    non-finite metric is a crash, as always). The last value of a name wins.
    """
    clean: dict[str, float] = {}
    for name, value in values.items():
        if not (name[:1] in _NAME_FIRST and set(name) <= _NAME_REST):
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
    _write_record(_CHANNEL, {"report": clean})


def load_candidate(path: str | os.PathLike[str], *, timeout: float = 60.0) -> Candidate:
    """The candidate module at ``path`` (a ``.py`` file or a package directory), as a proxy.

    ``path`` is relative to the evaluator's directory (the sealed directory,
    where Ratchet copies the declared ``[evaluate] inputs``: list the
    editable file there). ``timeout`` is the limit of each call, in seconds.
    A symlink is refused: the candidate's code is a file it declared, not a
    pointer to somewhere else.
    """
    from pathlib import Path

    from ._candidate import Candidate

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
