"""The one process runner: a command, a budget, a whole process tree killed on time.

Every phase (smoke, run, evaluate) and every agent command goes through
``run_command``. The command must not outlive its budget, its descendants must
not outlive the command, and nothing it started may outlive Ratchet itself,
not even when Ratchet is killed with SIGKILL.

How: ``run_command`` forks a *shepherd*, a copy of the current process that
never execs (starting a fresh interpreter would cost ~110 ms per run). The
shepherd

- makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so every
  descendant that is orphaned, double-forked daemons included, is reparented
  to it instead of to init and stays findable;
- spawns ``/bin/sh -c COMMAND`` in a new session with ``posix_spawn``, behind
  a bubblewrap prefix at level ``bwrap`` and, when there are resource
  limits or a cgroup, behind a gate that holds it until the limits are set
  and it has joined the phase's cgroup (see ``sandbox`` and ``cgroup``);
- waits without polling for whichever comes first: the command's exit
  (SIGCHLD through ``signal.set_wakeup_fd``), the deadline (the poll timeout),
  a byte on the control pipe (Ratchet asks it to stop) or EOF on that pipe
  (Ratchet died: stop everything); with a process limit it also wakes every
  ``_TICK_S`` to count the tree (at real-time priority where allowed, so a
  fork bomb cannot starve it), and kills it when there are too many;
- then kills every descendant it still has: SIGTERM to the tree found in
  ``/proc`` and to the command's process group, ``grace`` seconds of reaping,
  then SIGKILL until ``waitpid`` says it has no children left;
- reports one JSON line on a status pipe and leaves with ``os._exit``.

Ratchet (the parent) meanwhile reads the output pipe to EOF, which comes only
when every process holding its write end is dead, writes the log, calls
``on_line`` for each line as it arrives, then reads the status and reaps the
shepherd. It watches the status pipe in the same ``poll``: EOF there
without a report means the shepherd died (a candidate can SIGKILL it at
level ``process``). Ratchet then kills the tree itself, so that no process
of the experiment outlives it and none holds the output pipe forever:

- the phase's cgroup v2 (created by Ratchet before the fork, joined by the
  command through the gate; ``cgroup.kill`` reaches every process in it,
  whoever its parent now is), where Ratchet may create one;
- and, always on Linux, Ratchet is itself a child subreaper while a phase
  runs (``PR_SET_CHILD_SUBREAPER``, unset when the phase ends), so the
  orphans of a dead shepherd are reparented to Ratchet rather than to init;
  those started after the shepherd are killed tree by tree and reaped.

The result then has ``lost`` set, and the phase is a ``crash`` with that
reason, never an internal error. After the sweep the pipe is read for at
most ``_DRAIN_S`` seconds more. When the phase ends normally the cgroup is
checked empty (killed if not) and removed.

The shepherd ignores the signals a terminal sends to the whole foreground
group (SIGINT, SIGQUIT, SIGHUP, SIGTSTP): Ratchet decides what Ctrl-C means,
and if Ratchet dies of one of them the control pipe reaches EOF and the
shepherd cleans up. SIGTERM sent to the shepherd itself stops the tree before
the shepherd leaves, rather than killing the shepherd at once and orphaning
the experiment.

Ratchet's process that runs phases is single-threaded by design: ``os.fork``
in a process with other threads can deadlock the child (Python 3.12+ warns
about it), and the subreaper and the sweep of adopted orphans are properties
of the whole process. With several workers (``--workers N``) each local
worker's phases run in a single-threaded process of its own
(``execute.isolated``), started with fork+exec by ``subprocess`` before any
worker thread exists; the driver's threads never call ``run_command``. The one
exception is the agent proposer's command, run by the driver's thread while
the worker threads wait (blocked in a socket read or on the loop's lock, not
inside any lock the shepherd's code takes).

Platforms: Linux is the target. Without ``prctl`` (macOS, BSD) or without a
readable ``/proc``, the shepherd falls back to killing the command's process
group; descendants that left that group (``setsid`` daemons) may then escape,
and a killed shepherd's orphans go to init.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import gc
import json
import math
import os
import re
import resource
import select
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ExperimentCrashed, StorageError
from . import cgroup
from .orphans import kill_adopted, set_subreaper
from .proctree import descendants, group_exists, machine_processes, outrank_the_tree
from .sandbox import Limits, Sandbox, bwrap_prefix, child_rlimits, grant

__all__ = ["RunSpec", "RunResult", "run_command"]

_CHUNK = 64 * 1024
_TAIL_CHARS = 4000
_TAIL_BYTES = 4 * _TAIL_CHARS + 16
_MAX_LINE = 1024 * 1024
_MAX_BACK = 4_000_000  # the most of a capped log's end held in memory until EOF
_PROTOCOL_LINE = re.compile(rb"^[^\n:={]*[:={][^\n]*$", re.MULTILINE)
_KILL_RETRY_S = 0.2
_MAX_WAIT_S = 86_400.0  # poll() takes int milliseconds; an infinite budget waits in days
_DRAIN_S = 5.0  # once the shepherd is gone, how long the output pipe may stay open
_LOST = "the process supervising it was killed; "
_CAUGHT = "every process it started was killed too"
_ESCAPED = "some process it started kept its output open and could not be killed"
# The gate: a shell that waits for the shepherd to set the limits, then becomes the command.
_GATE_FD = 3
_GATE = 'read _ <&3 || exit 126; exec "$@" 3<&-'
_TICK_S = 0.1  # how often the tree's processes are counted when their number is limited
_COUNT_SHARE = 0.05  # ...but counting may take at most this share of the shepherd's time
_MAX_TICK_S = 0.5  # ...yet happens at least this often
# Sent to the whole foreground group by a terminal; Ratchet alone reacts to them.
_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP)
_GUARDED = {*_TERMINAL_SIGNALS, signal.SIGTERM, signal.SIGCHLD}
# The command starts with default dispositions for all that Python or the shepherd changed.
_DEFAULT_IN_CHILD = (*_GUARDED, signal.SIGPIPE, signal.SIGXFSZ)


@dataclass(frozen=True)
class RunSpec:
    """What to run, where, with which environment and limits."""

    command: str  # run through /bin/sh -c
    cwd: Path
    env: Mapping[str, str]  # the complete child environment (already scrubbed by the caller)
    budget: float  # seconds of wall time before SIGTERM to the whole tree
    grace: float  # seconds between SIGTERM and SIGKILL
    log_path: Path  # stdout+stderr interleaved are written here (parent dirs created)
    log_cap_bytes: int = 10_000_000
    sandbox: Sandbox | None = None  # isolation level and limits; None: none (level "none")
    # Descriptors the command inherits at the same numbers (above 3, the gate's), e.g. the
    # evaluation's report pipe; the shepherd closes its own copies once the command started.
    pass_fds: tuple[int, ...] = ()
    # CPUs the command and everything it starts may run on (its worker's slot); () = any.
    cpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """How a command ended.

    ``stop_reason`` is set whenever a stop was asked for, even if the command
    happened to finish on its own first; ``returncode`` tells which.
    """

    returncode: int | None  # main command's exit status; -N when it died of signal N
    timed_out: bool  # budget expired and the tree was killed
    stop_reason: str | None  # on_line's reason, or "interrupted" after Ctrl-C
    duration_s: float  # spawn to the main process's exit: the experiment's own time
    log_bytes: int  # total bytes of output produced (including what went past the cap)
    truncated: bool  # output hit log_cap_bytes; the log ends with a marker line
    tail: str  # the last <= 4000 characters of output, for failure reasons
    violation: str | None = None  # a limit the runner enforced by killing the tree
    lost: str | None = None  # the shepherd died without a report: what became of the tree


def run_command(spec: RunSpec, on_line: Callable[[str], str | None] | None = None) -> RunResult:
    """Run ``spec.command`` under its budget and return how it ended.

    ``on_line`` sees every complete output line as it arrives (also past the
    log cap); a non-empty return value stops the whole tree and becomes
    ``stop_reason``. Ctrl-C (KeyboardInterrupt) while waiting stops the tree
    the same way and returns with ``stop_reason="interrupted"``. Raises
    ``ExperimentCrashed`` when the command cannot be started at all (for
    example a missing ``cwd``).
    """
    try:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Replace, never truncate, an old log: ext4 flushes a truncated-and-rewritten
        # file on close (auto_da_alloc), which costs milliseconds per run.
        spec.log_path.unlink(missing_ok=True)
        log = open(spec.log_path, "wb", buffering=0)
    except OSError as exc:
        raise _unwritable(spec.log_path, exc) from None
    with log:
        channel = _Channel.start(spec)
        try:
            capture = _Capture(log, spec.log_cap_bytes, on_line, channel.stop)
            _pump(channel, capture)
            status = channel.status()
        finally:
            channel.close()
    if capture.write_error is not None:
        raise _unwritable(spec.log_path, capture.write_error)
    return _result(
        spec, status, capture, channel.interrupted, channel.lost_after, channel.escaped
    )


def _unwritable(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot write the log {path}: {exc.strerror or exc} — free some disk space"
        " (or fix the permissions), then rerun the same tag to resume"
    )


def _pump(channel: _Channel, capture: _Capture) -> None:
    """Copy output to the log and ``on_line`` until EOF, watching the shepherd meanwhile.

    The output pipe reaches EOF only when every process holding it is dead.
    If the shepherd dies first (a candidate killed it) while a daemon keeps
    the pipe open, its status pipe says so; the tree is then killed from
    here (``_Channel.sweep``), and the pipe is read for at most ``_DRAIN_S``
    more. Ctrl-C only asks for a stop.
    """
    poller = select.poll()
    poller.register(channel.out_r, select.POLLIN)
    poller.register(channel.status_r, select.POLLIN)
    deadline: float | None = None
    while True:
        try:
            wait = _MAX_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
            events = poller.poll(math.ceil(wait * 1000))
            if not events and deadline is not None and time.monotonic() >= deadline:
                channel.escaped = True  # something out of reach holds the pipe: stop reading
                break
            for fd, _ in events:
                if fd == channel.out_r:
                    chunk = os.read(channel.out_r, _CHUNK)
                    if not chunk:
                        _uninterrupted(channel, capture.finish)
                        return
                    capture.feed(chunk)
                elif not channel.read_status():
                    poller.unregister(channel.status_r)
                    channel.sweep()
                    deadline = time.monotonic() + _DRAIN_S
        except KeyboardInterrupt:
            channel.interrupt()
    _uninterrupted(channel, capture.finish)


def _uninterrupted(channel: _Channel, call: Callable[[], object]) -> object:
    """Call ``call`` to completion; a Ctrl-C meanwhile asks the shepherd to stop."""
    while True:
        try:
            return call()
        except KeyboardInterrupt:
            channel.interrupt()


def _result(
    spec: RunSpec,
    status: dict,
    capture: _Capture,
    interrupted: bool,
    lost_after: float | None,
    escaped: bool = False,
) -> RunResult:
    """Combine the shepherd's report and the captured output into a ``RunResult``.

    ``lost_after``: seconds from the fork to the shepherd's death when it died
    without a report (the tree was then killed from here), else None;
    ``escaped``: the output pipe stayed open even after that.
    """
    if status.get("error"):
        raise ExperimentCrashed(
            f"could not start `{spec.command}` in {spec.cwd}: {status['error']}"
        )
    return RunResult(
        returncode=status.get("returncode"),
        timed_out=bool(status.get("timed_out")),
        stop_reason="interrupted" if interrupted else capture.stop_reason,
        duration_s=float(status.get("duration", lost_after or 0.0)),
        log_bytes=capture.total,
        truncated=capture.total > capture.cap,
        tail=capture.tail(),
        violation=status.get("violation"),
        lost=None if status or lost_after is None else _LOST + (_ESCAPED if escaped else _CAUGHT),
    )


# --- the parent's side --------------------------------------------------------------


class _Channel:
    """Ratchet's ends of the three pipes to a shepherd, the shepherd's pid, the phase's cgroup."""

    def __init__(
        self,
        pid: int,
        out_r: int,
        ctl_w: int,
        status_r: int,
        group: Path | None = None,
        prctl: Callable[..., int] | None = None,
    ) -> None:
        self.pid = pid
        self.out_r = out_r
        self.ctl_w: int | None = ctl_w
        self.status_r = status_r
        self.group = group  # the phase's cgroup, None where none could be created
        self.prctl = prctl  # set: Ratchet is the subreaper of last resort during the phase
        self.started = time.monotonic()
        self.interrupted = False
        self.lost_after: float | None = None  # the shepherd died without a report
        self.escaped = False  # ...and the output pipe stayed open after the sweep
        self._stop_sent = False
        self._report = bytearray()
        self._reported = False  # EOF on the status pipe: the shepherd has left

    @classmethod
    def start(cls, spec: RunSpec) -> _Channel:
        """Fork the shepherd; terminal signals stay blocked until both sides are ready.

        Before the fork: the phase's cgroup, and Ratchet becomes a child
        subreaper until ``close``, so that the orphans of a shepherd killed
        by its own command come to Ratchet instead of to init.
        """
        prctl = _prctl()
        group = None if _contained(spec) else cgroup.create()
        subreaper = set_subreaper(prctl, True)
        out_r, out_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        status_r, status_w = os.pipe()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _GUARDED)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for fd in (out_r, out_w, ctl_r, ctl_w, status_r, status_w):
                os.close(fd)
            set_subreaper(prctl, False)
            if group is not None:
                cgroup.remove(group)
            raise
        if pid == 0:  # the shepherd: never returns into the caller's code
            code = 1
            try:
                _shepherd(spec, out_w, ctl_r, status_w, old_mask, prctl, group)
                code = 0
            finally:
                os._exit(code)
        for fd in (out_w, ctl_r, status_w):
            os.close(fd)
        channel = cls(pid, out_r, ctl_w, status_r, group, prctl if subreaper else None)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        except KeyboardInterrupt:
            channel.interrupt()
        return channel

    def stop(self) -> None:
        """Ask the shepherd to stop the tree now (once; harmless if it already left)."""
        if self._stop_sent or self.ctl_w is None:
            return
        self._stop_sent = True
        try:
            os.write(self.ctl_w, b"s")
        except OSError:
            pass

    def interrupt(self) -> None:
        """Ctrl-C: remember it and stop the tree."""
        self.interrupted = True
        self.stop()

    def read_status(self) -> bool:
        """Read what the status pipe has; False at EOF (the shepherd has left)."""
        if not self._reported:
            chunk = os.read(self.status_r, _CHUNK)
            self._report += chunk
            self._reported = not chunk
        return not self._reported

    def status(self) -> dict:
        """The shepherd's one-line JSON report; ``{}`` when it died without one."""
        while _uninterrupted(self, self.read_status):
            pass
        report = self._parsed()
        if report is None:
            self.sweep()
            return {}
        return report

    def _parsed(self) -> dict | None:
        """The report once it is complete; None before, or when the shepherd left none."""
        if not self._reported:
            return None
        try:
            report = json.loads(self._report.decode())
        except ValueError:
            return None
        return report if isinstance(report, dict) else None

    def sweep(self) -> None:
        """The shepherd has left: if it left no report, kill from here what it supervised.

        The phase's cgroup goes at once; the orphans the shepherd left to
        Ratchet (the subreaper of last resort) are killed tree by tree.
        """
        if self._parsed() is not None or self.lost_after is not None:
            return
        self.lost_after = time.monotonic() - self.started
        if self.group is not None:
            cgroup.kill(self.group)
        if self.prctl is not None:
            kill_adopted(self.pid, _DRAIN_S)

    def close(self) -> None:
        """Close our pipe ends (EOF on the control pipe stops a running tree), reap the shepherd.

        Then nothing of the phase may be left: its cgroup is killed and
        removed, and Ratchet stops being a subreaper.
        """
        if self.ctl_w is not None:
            os.close(self.ctl_w)
            self.ctl_w = None
        os.close(self.out_r)
        os.close(self.status_r)
        try:
            _uninterrupted(self, lambda: os.waitpid(self.pid, 0))
        except ChildProcessError:
            pass  # someone else's SIGCHLD handler reaped it already
        if self.group is not None:
            cgroup.remove(self.group)
        if self.prctl is not None:
            set_subreaper(self.prctl, False)


def _contained(spec: RunSpec) -> bool:
    """Whether the command dies with its shepherd without a cgroup: bubblewrap's PID namespace.

    bwrap runs with ``--die-with-parent`` as the namespace's init, and the
    kernel kills every process of a PID namespace when its init dies. A
    cgroup would add one migration per phase (a few ms: the kernel waits for
    an RCU grace period) for nothing.
    """
    return spec.sandbox is not None and spec.sandbox.level == "bwrap"


class _Capture:
    """Writes output to the capped log, keeps its tail, and hands lines to ``on_line``.

    A log over its cap keeps its head *and* its tail: the first half of the cap
    is written as it comes, the last half (at most ``_MAX_BACK``) is held in
    memory (``_back``), and at EOF the file is cut back to the head and ends
    with a one-line marker ("… N bytes omitted …") and the tail, where a
    traceback is. Up to the cap the file holds the output as it arrives, so it
    can be read while it runs.
    """

    def __init__(
        self,
        log: BinaryIO,
        cap: int,
        on_line: Callable[[str], str | None] | None,
        stop: Callable[[], None],
    ) -> None:
        self.log = log
        self.cap = max(0, cap)
        # Bytes kept from the start of an output over the cap: half of it, or all but
        # _MAX_BACK for a cap so large that half would be a lot of memory to hold.
        self.head = self.cap - min(self.cap // 2, _MAX_BACK)
        self.on_line = on_line
        self.stop = stop
        self.total = 0
        self.stop_reason: str | None = None
        self._pending = b""
        self._tail = bytearray()
        self._back = bytearray()  # the output past the head: its last cap - head bytes
        self._head_end = b"\n"  # the head's last byte
        self.write_error: OSError | None = None

    def feed(self, chunk: bytes) -> None:
        """Take one chunk of output as read from the pipe."""
        room = self.cap - self.total
        if room > 0 and self.write_error is None:
            try:
                self.log.write(chunk[:room])
            except OSError as exc:  # a full disk: stop the run, Ratchet cannot record it
                self.write_error = exc
                self.stop()
        self._keep_back(chunk)
        self.total += len(chunk)
        self._tail += chunk
        if len(self._tail) > _TAIL_BYTES:
            del self._tail[:-_TAIL_BYTES]
        if self.on_line is not None:
            self._split(chunk)

    def _keep_back(self, chunk: bytes) -> None:
        """Remember the head's last byte and the last ``cap - head`` bytes past the head."""
        start = self.head - self.total  # where the head ends within this chunk
        if 0 < start <= len(chunk):
            self._head_end = chunk[start - 1 : start]
        keep = self.cap - self.head
        if keep <= 0:
            return
        if start < len(chunk):
            self._back += chunk[max(0, start) :]
        if len(self._back) > keep:
            del self._back[:-keep]

    def _split(self, chunk: bytes) -> None:
        """Emit each complete line; an endless line (progress bars) is emitted at 1 MiB.

        Past the log cap only lines that can carry the metric protocol (a ``:``,
        ``=`` or ``{``) are emitted, found by one regex scan of the chunk: a flood
        of hundreds of MB then costs C speed, not a Python call per line, and
        the last metric line still counts.
        """
        data = self._pending + chunk
        if self.total - len(chunk) >= self.cap:
            cut = data.rfind(b"\n") + 1
            self._pending = data[cut:]
            for match in _PROTOCOL_LINE.finditer(data, 0, cut):
                self._emit(match.group())
        else:
            lines = data.split(b"\n")
            self._pending = lines.pop()
            for raw in lines:
                self._emit(raw)
        if len(self._pending) >= _MAX_LINE:
            self._emit(self._pending)
            self._pending = b""

    def _emit(self, raw: bytes) -> None:
        """One line to ``on_line``; its first stop request stops the run."""
        line = raw.decode("utf-8", "replace")
        if line.endswith("\r"):
            line = line[:-1]
        reason = self.on_line(line) if self.on_line is not None else None
        if reason and self.stop_reason is None:
            self.stop_reason = reason
            self.stop()

    def finish(self) -> None:
        """At EOF: the last unterminated line, and the truncation marker."""
        pending, self._pending = self._pending, b""
        if pending and self.on_line is not None:
            self._emit(pending)
        if self.total > self.cap and self.write_error is None:
            try:
                self._cut_middle()
            except OSError as exc:
                self.write_error = exc

    def _cut_middle(self) -> None:
        """Cut the log back to its head and append the marker line and the tail.

        The tail starts at a line boundary when it holds one, so it does not
        begin with half a line.
        """
        back = bytes(self._back)
        cut = back.find(b"\n") + 1
        if 0 < cut < len(back):
            back = back[cut:]
        omitted = self.total - self.head - len(back)
        newline = b"" if self._head_end == b"\n" or not self.head else b"\n"
        marker = (
            f"[ratchet: … {omitted} bytes omitted … (output was {self.total} bytes, over the"
            f" {self.cap}-byte log cap: its first {self.head} and last {len(back)} are kept)]\n"
        )
        self.log.truncate(self.head)
        self.log.seek(self.head)
        self.log.write(newline + marker.encode() + back)

    def tail(self) -> str:
        """The last characters of output; a character cut at the start decodes as U+FFFD."""
        return bytes(self._tail).decode("utf-8", "replace")[-_TAIL_CHARS:]


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, loaded in the parent so the shepherd only calls it; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# --- the shepherd's side (runs in the forked child only) ----------------------------


def _shepherd(
    spec: RunSpec,
    out_w: int,
    ctl_r: int,
    status_w: int,
    old_mask: set[signal.Signals],
    prctl: Callable[..., int] | None,
    group: Path | None = None,
) -> None:
    """Spawn the command, supervise it, kill what is left, report; then the caller exits."""
    gc.disable()  # a collection could close fds of the parent's garbage that we reuse
    _close_fds_except({out_w, ctl_r, status_w, *spec.pass_fds})
    wake_r = _catch_signals()
    tracks_tree = _become_subreaper(prctl)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask - {signal.SIGCHLD, signal.SIGTERM})
    sandbox = spec.sandbox or Sandbox("none", Limits())
    wrapped = sandbox.level == "bwrap"
    shepherd = _Shepherd(wake_r, ctl_r, tracks_tree, sandbox.limits.processes, wrapped, group)
    try:
        report = shepherd.run(spec, out_w)
    except BaseException:
        shepherd.kill_tree(spec.grace)
        raise
    _write_all(status_w, (json.dumps(report) + "\n").encode())


def _become_subreaper(prctl: Callable[..., int] | None) -> bool:
    """Adopt every orphaned descendant; only worth it when /proc lets us find them."""
    return os.access("/proc/self/stat", os.R_OK) and set_subreaper(prctl, True)


def _close_fds_except(keep: set[int]) -> None:
    """Drop every inherited fd (other runs' pipes, the log) so EOFs arrive on time."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), low + 1))


def _catch_signals() -> int:
    """Ignore terminal signals; route SIGCHLD and SIGTERM to a wakeup pipe we poll."""
    for signum in _TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, _ignore)
    return wake_r


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler; the wakeup byte carries the information."""


def _spawn(spec: RunSpec, out_w: int, group: Path | None = None) -> int:
    """Start the command: own session, stdin /dev/null, stdout+stderr to the output pipe.

    The one place that decides how the command is started: the sandbox's
    prefix goes before ``/bin/sh -c``, its limits are set on the child, and
    the child joins the phase's cgroup before it runs anything, and is pinned
    to ``spec.cpus`` (its worker's slot) the same way: set on the held gate,
    the affinity is inherited by the command and all it starts. The shepherd
    itself stays unpinned, so a busy slot cannot starve its supervision.
    """
    os.chdir(spec.cwd)
    sandbox = spec.sandbox or Sandbox("none")
    grant(sandbox)
    argv = [*bwrap_prefix(sandbox, Path(os.getcwd())), "/bin/sh", "-c", spec.command]
    limits = child_rlimits(sandbox.limits) if sandbox.level != "none" else []
    if not limits and group is None and not spec.cpus:
        return _posix_spawn(argv, spec.env, out_w)
    return _gated_spawn(argv, spec.env, out_w, limits, group, spec.cpus)


def _posix_spawn(
    argv: list[str], env: Mapping[str, str], out_w: int, gate: int | None = None
) -> int:
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, out_w, 2),
    ]
    if gate is not None:
        actions.append((os.POSIX_SPAWN_DUP2, gate, _GATE_FD))
    return os.posix_spawn(
        argv[0],
        argv,
        dict(env),
        file_actions=actions,
        setsid=True,
        setsigmask=(),
        setsigdef=_DEFAULT_IN_CHILD,
    )


def _gated_spawn(
    argv: list[str],
    env: Mapping[str, str],
    out_w: int,
    limits: list[tuple[int, int]],
    group: Path | None = None,
    cpus: tuple[int, ...] = (),
) -> int:
    """Spawn a shell that waits on a pipe, set its limits with ``prlimit``, then let it exec.

    ``posix_spawn`` cannot set limits, and a fork of the shepherd costs as
    much as copying Ratchet's page tables (~15 ms on a VM); this costs one
    extra exec of ``/bin/sh`` (~1 ms). Everything the command starts
    inherits the limits, its cgroup (``group``) when there is one, and its
    CPU affinity (``cpus``): ``posix_spawn`` cannot set that either, and
    setting it on a child already running would miss what it forked first.
    If the shepherd dies first, the gate sees EOF and the command never runs.
    """
    read_end, gate_w = os.pipe()
    gate_r = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 10)  # never fd 3 itself
    os.close(read_end)
    try:
        pid = _posix_spawn(["/bin/sh", "-c", _GATE, "sh", *argv], env, out_w, gate_r)
    except BaseException:
        os.close(gate_w)
        raise
    finally:
        os.close(gate_r)
    try:
        for which, value in limits:
            resource.prlimit(pid, which, (value, value))
        if group is not None:
            cgroup.join(group, pid)
        if cpus:
            os.sched_setaffinity(pid, cpus)
        os.write(gate_w, b"go\n")
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(gate_w)
    return pid


class _Shepherd:
    """The supervising loop: reaps children, enforces the deadline, kills the tree."""

    def __init__(
        self,
        wake_r: int,
        ctl_r: int,
        tracks_tree: bool,
        max_processes: int | None = None,
        wrapped: bool = False,
        group: Path | None = None,
    ) -> None:
        self.wake_r = wake_r
        self.group = group  # the phase's cgroup: SIGKILL reaches all of it at once
        self.ctl_r = ctl_r
        self.tracks_tree = tracks_tree  # subreaper with /proc: our children are all of it
        self.wrapped = wrapped  # the main process is bwrap, the command runs below it
        self.max_processes = max_processes
        self.next_count = 0.0
        self.violation: str | None = None
        self.pid: int | None = None
        self.returncode: int | None = None
        self.started = 0.0
        self.ended: float | None = None

    def run(self, spec: RunSpec, out_w: int) -> dict:
        """Spawn, wait for exit / deadline / stop, then make sure nothing is left."""
        try:
            for fd in spec.pass_fds:
                os.set_inheritable(fd, True)
            self.pid = _spawn(spec, out_w, self.group)
        except (OSError, ValueError) as error:
            return {"error": getattr(error, "strerror", None) or str(error)}
        finally:
            for fd in (out_w, *spec.pass_fds):
                os.close(fd)
        # The command's time (and its budget) starts once it runs: joining the cgroup can
        # take an RCU grace period (ms), which is Ratchet's overhead, not the experiment's.
        self.started = time.monotonic()
        if self.max_processes is not None:
            outrank_the_tree()
        ending = self._supervise(self.started + spec.budget)
        if ending == "exited" and self._too_many_processes(due=True):
            ending = "limit"  # the command left more behind than it may have running
        if ending == "limit":
            self._signal_tree(signal.SIGKILL)  # a fork bomb gets no grace: its group dies at once
        self.kill_tree(spec.grace)
        ended = self.ended if self.ended is not None else time.monotonic()
        return {
            "returncode": self.returncode,
            "timed_out": ending == "timeout",
            "duration": ended - self.started,
            "violation": self.violation,
        }

    def _supervise(self, deadline: float) -> str:
        """Block until the command exits ("exited"), the deadline, a stop request, or a limit."""
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        poller.register(self.ctl_r, select.POLLIN)
        longest = _MAX_WAIT_S if self.max_processes is None else _TICK_S
        while not self._reap_and_check_main():
            if self._too_many_processes():
                return "limit"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for fd, _ in poller.poll(math.ceil(min(remaining, longest) * 1000)):
                if fd == self.ctl_r or signal.SIGTERM in self._drain_wakeups():
                    return "stop"  # a byte: Ratchet asks; EOF: Ratchet is gone
        return "exited"

    def _too_many_processes(self, due: bool = False) -> bool:
        """Count the tree (at most every tick); True, with ``violation`` set, when over the limit.

        Setting ``RLIMIT_NPROC`` cannot do this: the kernel counts all of a
        user's tasks, and not at all for root. The machine's process count is
        a cheap upper bound, so the tree is walked only when that is over.
        """
        limit, now = self.max_processes, time.monotonic()
        if limit is None or (now < self.next_count and not due):
            return False
        count = len(descendants(os.getpid())) if machine_processes() > limit else 0
        spent = time.monotonic() - now
        self.next_count = now + spent + min(_MAX_TICK_S, max(_TICK_S, spent / _COUNT_SHARE))
        if count <= limit:
            return False
        self.violation = f"exceeded the {limit}-process limit"
        return True

    def _reap_and_check_main(self) -> bool:
        """Reap what has exited; True once the main command is among it."""
        self.reap()
        return self.ended is not None

    def reap(self) -> bool:
        """Collect every exited child; True when no children are left at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return False
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self.ended = time.monotonic()

    def _drain_wakeups(self) -> set[int]:
        """The signal numbers that arrived since the last drain."""
        try:
            return set(os.read(self.wake_r, 1024))
        except BlockingIOError:
            return set()

    def kill_tree(self, grace: float) -> None:
        """SIGTERM to every descendant, ``grace`` seconds, then SIGKILL until none is left."""
        if not self._alive():
            return
        self._signal_tree(signal.SIGTERM)
        self._signal_tree(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        if self._wait_gone(time.monotonic() + grace):
            return
        while True:
            self._signal_tree(signal.SIGKILL)
            if self._wait_gone(time.monotonic() + _KILL_RETRY_S):
                return

    def _alive(self) -> bool:
        """Whether anything of the tree is left (as a subreaper, our children are all of it)."""
        if not self.reap():
            return True
        return not self.tracks_tree and self.pid is not None and group_exists(self.pid)

    def _wait_gone(self, deadline: float) -> bool:
        """Reap as children exit until none is left (True) or the deadline passes (False)."""
        while self._alive():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([self.wake_r], [], [], min(remaining, _MAX_WAIT_S))
            self._drain_wakeups()
        return True

    def _signal_tree(self, signum: int) -> None:
        """``signum`` to the command's group and to every descendant found in /proc.

        A wrapper (bwrap) is spared the SIGTERM: it would die of it and take
        the sandbox down at once, leaving the command no grace. It exits by
        itself when the command does, or dies of the SIGKILL that follows.
        """
        spare = self.pid if self.wrapped and signum == signal.SIGTERM and self.tracks_tree else None
        if self.pid is not None and spare is None:
            try:
                os.killpg(self.pid, signum)
            except OSError:
                pass
        for pid in descendants(os.getpid()):
            try:
                if pid != spare:
                    os.kill(pid, signum)
            except OSError:
                pass
        if signum == signal.SIGKILL and self.group is not None:
            cgroup.kill(self.group)


def _write_all(fd: int, data: bytes) -> None:
    """Write the report; a pipe with no reader (Ratchet died) is not an error here."""
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # Ratchet is gone; nobody is left to read the report
