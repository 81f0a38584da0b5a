"""The sealed directory the fixed phases (evaluate, confirm) run in, and their report channel.

The rule: **the evaluation never runs, imports or trusts anything the
candidate wrote, except the outputs it declares.** So a fixed phase never
runs in the candidate's worktree, where the run phase could have left a
``json.py`` next to ``evaluate.py`` or a forged ``__pycache__/*.pyc``. It
runs in a fresh directory (``tempfile.mkdtemp``: in ``TMPDIR`` when that is
set, else in ``/dev/shm`` when the inputs are small and it has room, else in
the system's temporary directory; outside every worktree and the user's
repository, removed after the phase) laid out as::

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

The report channel: one end of a datagram socket pair that the phase
inherits (its number in ``RATCHET_REPORT_FD``); Ratchet keeps the other end
with ``SO_PASSCRED`` set, so the kernel stamps every record with the pid of
the process that sent it, which no process without ``CAP_SYS_ADMIN`` can
fake. ``ratchet.evaluation`` says hello on import; from then on only that
process may report (``read_reports``). A socket, unlike a pipe, cannot be
reopened through ``/proc/PID/fd``, so a candidate that finds a holder of
the channel there can neither read it nor write to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import struct
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
    "receive",
    "read_reports",
    "Reported",
]

REPORT_FD_ENV = "RATCHET_REPORT_FD"  # the same name as ratchet.evaluation.REPORT_FD_ENV
_PIPE_FD_FLOOR = 10  # above the runner's gate descriptor (3) and the standard three
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_SHM = "/dev/shm"
_SHM_MAX_INPUT = 32_000_000  # declared inputs + pinned files up to this go to memory
_SHM_MIN_FREE = 512_000_000  # ...when the memory filesystem has this much room
_PYTHON_OFF = ("PYTHONPYCACHEPREFIX", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT")


class SealProblem(Exception):
    """A declared input that cannot be sealed; the message is the sample's crash reason."""


@dataclass(frozen=True)
class Sealed:
    """One sealed directory: where the phase runs, what is on its sys.path, its channel."""

    root: Path
    work: Path
    code: Path
    report_w: int  # the end the phase inherits
    report_r: int  # Ratchet's end (SO_PASSCRED), read after the phase


@contextmanager
def sealed_dir(
    pinned: Mapping[str, bytes], inputs: list[str], source: Path
) -> Iterator[Sealed]:
    """A fresh sealed directory for one phase run; removed (and the pipe closed) afterwards.

    ``source`` is the candidate's study directory, where the declared
    ``inputs`` are read from. Raises ``SealProblem`` for a bad input.
    """
    size = sum(_input_bytes(source, name) for name in inputs) + sum(map(len, pinned.values()))
    root = Path(tempfile.mkdtemp(prefix="ratchet-sealed-", dir=_parent(size)))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    ours.setblocking(False)
    theirs.setblocking(False)  # a flood gets EAGAIN in the evaluator, never a hang
    read_end = ours.detach()
    report_w = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, _PIPE_FD_FLOOR)
    theirs.close()
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


def _parent(size: int, shm: str = _SHM) -> str | None:
    """Where a sealed directory of ``size`` bytes goes: memory when small and roomy, else TMPDIR.

    On a busy disk a directory created and removed costs milliseconds (ext4's
    journal); on tmpfs it costs microseconds. Large inputs (a model) stay on
    disk, and a ``TMPDIR`` the user set always wins.
    """
    if os.environ.get("TMPDIR") or size > _SHM_MAX_INPUT:
        return None
    if not os.path.isdir(shm) or not os.access(shm, os.W_OK | os.X_OK):
        return None
    try:
        usage = os.statvfs(shm)
    except OSError:
        return None
    return shm if usage.f_bavail * usage.f_frsize >= _SHM_MIN_FREE else None


def _input_bytes(source: Path, name: str) -> int:
    """The size of a declared input, or SealProblem naming what is wrong with it."""
    path = source / name
    for parent in [*reversed(Path(name).parents)][1:]:
        if (source / parent).is_symlink():
            raise SealProblem(f"declared input {name}: {parent} is a symlink")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise SealProblem(
            f"declared input {name} is missing: the run phase did not write it"
        ) from None
    if stat.S_ISLNK(info.st_mode):
        raise SealProblem(f"declared input {name} is a symlink; inputs must be regular files")
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    if not stat.S_ISDIR(info.st_mode):
        raise SealProblem(f"declared input {name} is not a regular file or directory")
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def _copy_input(source: Path, name: str, work: Path) -> None:
    """Copy one declared input: regular files and directories only, never through a link."""
    path = source / name
    mode = os.lstat(path).st_mode  # checked by _input_bytes; the candidate's tree is still now
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


def receive(fd: int) -> list[tuple[int | None, bytes]]:
    """Every record waiting on Ratchet's end now: (the sender's pid as the kernel says, data)."""
    sock = socket.socket(fileno=os.dup(fd))
    records: list[tuple[int | None, bytes]] = []
    try:
        sock.setblocking(False)
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(_CREDS.size))
            except (BlockingIOError, InterruptedError):
                break
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDS.unpack(payload[: _CREDS.size])[0]
            records.append((pid, data))
    finally:
        sock.close()
    return records


def read_reports(records: list[tuple[int | None, bytes]]) -> Reported | None:
    """None when nobody said hello (metric lines on the output count), else the reported values.

    The first record must be a hello; its sender is the evaluator, and every
    later record must come from the same process. A record from any other
    process, a second hello or a malformed record mean someone other than the
    evaluator wrote on the channel, and nothing reported counts.
    """
    if not records:
        return None
    parsed = []
    for pid, data in records:
        try:
            record = json.loads(data)
        except ValueError:
            return Reported(problem="the report channel carried a malformed record")
        parsed.append((pid, record if isinstance(record, dict) else {}))
    evaluator, hello = parsed[0]
    if evaluator is None or "hello" not in hello:
        return Reported(problem="the report channel was written before the evaluator said hello")
    values: dict[str, float] = {}
    for pid, record in parsed[1:]:
        if "hello" in record:
            return Reported(problem="two processes claimed the report channel")
        if pid != evaluator or not isinstance(record.get("report"), dict):
            return Reported(problem="a report channel record did not come from the evaluator")
        for name, value in record["report"].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return Reported(problem=f"reported {name} is not a number")
            values[str(name)] = float(value)
    return Reported(values=values)
