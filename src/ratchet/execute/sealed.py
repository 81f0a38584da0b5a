"""The sealed directory the fixed phases (evaluate, confirm) run in, and their report channel.

The rule: **the evaluation never runs, imports or trusts anything the
candidate wrote, except the outputs it declares.** So a fixed phase never
runs in the candidate's worktree, where the run phase could have left a
``json.py`` next to ``evaluate.py`` or a forged ``__pycache__/*.pyc``. It
runs in a fresh directory (``tempfile.mkdtemp``: outside every worktree and
the user's repository, removed after the phase) laid out as::

    <sealed>/work/   the phase's working directory: the pinned protected files
                     (from the bytes pinned when the tag started, never from the
                     worktree) and copies of the declared inputs, at their
                     study-relative paths
    <sealed>/code/   the pinned ``.py`` files alone: the one directory on the
                     evaluator's ``sys.path``, so ``import scoring`` finds the
                     protected helper and ``import solver`` (an input) finds
                     nothing

Declared inputs (``[evaluate] inputs``) are plain paths: a regular file, or
a directory of regular files and directories, copied whole. A missing input,
a symlink anywhere in it, or a special file makes the sample a ``crash`` whose
reason names the input. Pinned files are written after the inputs, so an
input directory that holds a protected file gets the pinned copy.

Python there (``sealed_env``): ``PYTHONSAFEPATH`` (no script directory or
cwd on ``sys.path``), ``PYTHONNOUSERSITE``, ``PYTHONDONTWRITEBYTECODE`` (the
fresh ``code/`` has no ``__pycache__`` and gets none, so the only bytecode
Python reads is the interpreter's and the venv's own), ``PYTHONPATH`` set to
``code/`` alone, and ``PYTHONPYCACHEPREFIX`` removed. A private fresh
``PYTHONPYCACHEPREFIX`` was measured and left out: it makes Python recompile
every standard-library module at each evaluation (+~250 ms for the sine
study, seconds for torch), and buys nothing a fresh ``code/`` does not.

The report channel: a pipe whose write end the phase inherits (number in
``RATCHET_REPORT_FD``, non-blocking so a flood cannot hang the evaluator);
``ratchet.evaluation`` writes a hello carrying a random key, then reports
carrying it. ``read_reports`` decides what the records mean.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Sealed",
    "SealProblem",
    "sealed_dir",
    "sealed_env",
    "drain",
    "read_reports",
    "Reported",
]

REPORT_FD_ENV = "RATCHET_REPORT_FD"  # the same name as ratchet.evaluation.REPORT_FD_ENV
_PIPE_FD_FLOOR = 10  # above the runner's gate descriptor (3) and the standard three
_PYTHON_OFF = ("PYTHONPYCACHEPREFIX", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT")


class SealProblem(Exception):
    """A declared input that cannot be sealed; the message is the sample's crash reason."""


@dataclass(frozen=True)
class Sealed:
    """One sealed directory: where the phase runs, what is on its sys.path, its channel."""

    root: Path
    work: Path
    code: Path
    report_w: int  # the write end the phase inherits
    report_r: int  # Ratchet's end, read after the phase


@contextmanager
def sealed_dir(
    pinned: Mapping[str, bytes], inputs: list[str], source: Path
) -> Iterator[Sealed]:
    """A fresh sealed directory for one phase run; removed (and the pipe closed) afterwards.

    ``source`` is the candidate's study directory, where the declared
    ``inputs`` are read from. Raises ``SealProblem`` for a bad input.
    """
    root = Path(tempfile.mkdtemp(prefix="ratchet-sealed-"))
    read_end, write_end = os.pipe()
    report_w = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, _PIPE_FD_FLOOR)
    os.close(write_end)
    os.set_blocking(report_w, False)
    sealed = Sealed(root, root / "work", root / "code", report_w, read_end)
    try:
        sealed.work.mkdir()
        sealed.code.mkdir()
        for name in inputs:
            _copy_input(source, name, sealed.work)
        for rel, content in pinned.items():
            _write(sealed.work / rel, content)
            if rel.endswith(".py"):
                _write(sealed.code / rel, content)
        yield sealed
    finally:
        for fd in (report_w, read_end):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _copy_input(source: Path, name: str, work: Path) -> None:
    """Copy one declared input: regular files and directories only, never through a link."""
    path = source / name
    for parent in [*reversed(Path(name).parents)][1:]:
        if (source / parent).is_symlink():
            raise SealProblem(f"declared input {name}: {parent} is a symlink")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise SealProblem(
            f"declared input {name} is missing: the run phase did not write it"
        ) from None
    if stat.S_ISLNK(mode):
        raise SealProblem(f"declared input {name} is a symlink; inputs must be regular files")
    target = work / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISREG(mode):
        shutil.copyfile(path, target, follow_symlinks=False)
    elif stat.S_ISDIR(mode):
        _copy_tree(path, target, name)
    else:
        raise SealProblem(f"declared input {name} is not a regular file or directory")


def _copy_tree(path: Path, target: Path, name: str) -> None:
    target.mkdir(exist_ok=True)
    with os.scandir(path) as entries:
        for entry in entries:
            inner = f"{name}/{entry.name}"
            if entry.is_symlink():
                raise SealProblem(f"declared input {name} holds a symlink: {inner}")
            if entry.is_dir(follow_symlinks=False):
                _copy_tree(Path(entry.path), target / entry.name, inner)
            elif entry.is_file(follow_symlinks=False):
                shutil.copyfile(entry.path, target / entry.name, follow_symlinks=False)
            else:
                raise SealProblem(f"declared input {name} holds a special file: {inner}")


def sealed_env(environ: Mapping[str, str], sealed: Sealed) -> dict[str, str]:
    """The fixed phase's environment: Python isolated from the candidate, the channel's number."""
    env = {k: v for k, v in environ.items() if k not in _PYTHON_OFF}
    env.update(
        PYTHONSAFEPATH="1",
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(sealed.code),
    )
    env[REPORT_FD_ENV] = str(sealed.report_w)
    return env


# --- what the channel said (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """The evaluator used the harness: the values it reported, or why they cannot count."""

    values: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


def drain(fd: int) -> bytes:
    """Everything in the (non-blocking) pipe now."""
    os.set_blocking(fd, False)
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def read_reports(data: bytes) -> Reported | None:
    """None when nobody said hello (metric lines on stdout count), else the reported values.

    The first hello's key must be on every later record; a second hello, a
    record without the key or a malformed line mean someone other than the
    evaluator wrote on the channel, and nothing reported counts.
    """
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        return None
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            return Reported(problem="the report channel carried a malformed record")
        records.append(record if isinstance(record, dict) else {})
    key = records[0].get("hello")
    if not isinstance(key, str) or not key:
        return Reported(problem="the report channel was written before the evaluator said hello")
    values: dict[str, float] = {}
    for record in records[1:]:
        if "hello" in record:
            return Reported(problem="two processes claimed the report channel")
        if record.get("key") != key or not isinstance(record.get("report"), dict):
            return Reported(problem="a report channel record did not come from the evaluator")
        for name, value in record["report"].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return Reported(problem=f"reported {name} is not a number")
            values[str(name)] = float(value)
    return Reported(values=values)
