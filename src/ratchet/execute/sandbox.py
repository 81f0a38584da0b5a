"""How much a study's commands may do: resource limits, and bubblewrap isolation.

``[run] sandbox`` picks the level for every phase (smoke, run, evaluate):

``none``
    No limits beyond the runner's own: the budget and the whole-tree kill.
    Candidate code runs with the user's full permissions.

``process`` (default)
    Resource limits on every process of the command's tree, set (with
    ``prlimit``, Linux) on its first process before that runs anything, so
    everything it starts inherits them:

    - ``max_file_mb`` → ``RLIMIT_FSIZE``, the largest file any process may
      write. ``SIGXFSZ`` keeps its default action, so a shell tool writing
      past it dies of that signal; Python ignores ``SIGXFSZ`` itself, so a
      Python writer gets ``OSError: [Errno 27] File too large`` instead.
    - ``max_open_files`` → ``RLIMIT_NOFILE`` per process.
    - ``max_memory_mb`` → ``RLIMIT_DATA`` per process: private writable
      memory (heap, anonymous mappings, thread stacks; Linux >= 4.7). Not
      ``RLIMIT_AS``: torch and CUDA reserve terabytes of address space they
      never touch, so an address-space limit breaks ordinary training.
      Shared memory (``/dev/shm``) and GPU memory are not counted, and the
      limit is per process, not the sum over the tree.
    - ``max_processes``: the runner counts the tree's processes while it
      runs and kills the whole tree when there are more (a fork bomb is
      stopped within a fraction of a second and recorded as a crash naming
      the limit). For a non-root user ``RLIMIT_NPROC`` backs this up at
      (tasks now running on the machine + max_processes); the kernel counts
      threads there and ignores the limit for root.

    Sizes are decimal: 1 MB = 1,000,000 bytes, as for ``log_cap_mb``. Each
    limit is capped at the hard limit Ratchet itself runs under, and set as
    both soft and hard limit so the command cannot raise it again.

``bwrap``
    The limits above, and the command runs inside bubblewrap: no network
    (its own loopback only), the whole filesystem read-only, a private empty
    ``/tmp``, empty ``/run`` (service sockets, container secrets), and the
    user's repository replaced by an empty directory, so neither its files,
    its ``.git``, the ledger nor other worktrees can be seen. Inside it the
    candidate's worktree is bound writable, Ratchet's Python environment is
    re-exposed read-only when it lives in the repository, the study's
    protected files are read-only, and ``[run] hide`` paths are empty in the
    smoke and run phases (visible to the evaluate phase). Later rules win:
    repository hidden < worktree writable < read-only paths < ``hide``.
    The command has its own PID namespace (its ``/proc`` shows nothing of
    the host's processes) and, when Ratchet runs as root, no capabilities.
    GPU device nodes (``/dev/nvidia*``, ``/dev/dri``) are passed through.

    ``hide`` entries: ``~`` and ``$VAR``/``${VAR}`` are expanded from
    Ratchet's environment; an entry naming an unset or empty variable, or a
    path that does not exist, is skipped; a relative entry is relative to
    the study directory in the candidate's worktree. A hidden directory is
    an empty read-only directory, a hidden file reads as empty
    (``/dev/null``). An entry that would hide the worktree itself is a
    ``ConfigError``.

A study that asks for a level this machine cannot provide fails at start
(``check_available``), never silently runs with less.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ..errors import ConfigError, SandboxError
from ..study import RunPhase

__all__ = [
    "Level",
    "Limits",
    "Sandbox",
    "for_phase",
    "bwrap_prefix",
    "rlimits",
    "child_rlimits",
    "limit_hint",
    "expand_path",
    "check_available",
    "require_bwrap",
    "describe",
]

Level = Literal["none", "process", "bwrap"]

_MB = 1_000_000
_INSTALL = "apt-get install bubblewrap (or dnf install bubblewrap)"
_SERVICE_DIRS = ("/run", "/var/run")  # sockets of docker, dbus, agents; container secrets
_PRIVATE_TMP = "/tmp"
_MEMORY_SIGNS = (
    "MemoryError",
    "Cannot allocate memory",
    "can't allocate memory",
    "Unable to allocate",
    "std::bad_alloc",
)
_RLIMITS = (
    resource.RLIMIT_DATA,
    resource.RLIMIT_FSIZE,
    resource.RLIMIT_NOFILE,
    resource.RLIMIT_NPROC,
)
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Limits:
    """Resource limits of a command's process tree; None means unlimited."""

    memory_bytes: int | None = None
    file_bytes: int | None = None
    processes: int | None = None
    open_files: int | None = None

    @classmethod
    def from_phase(cls, run: RunPhase) -> Limits:
        """The limits ``[run]`` asks for (they apply to every phase)."""
        return cls(
            memory_bytes=_bytes(run.max_memory_mb),
            file_bytes=_bytes(run.max_file_mb),
            processes=run.max_processes,
            open_files=run.max_open_files,
        )


def _bytes(mb: float | None) -> int | None:
    return None if mb is None else max(1, int(mb * _MB))


@dataclass(frozen=True)
class Sandbox:
    """Everything the runner needs to start one command at one isolation level.

    The path fields matter for ``bwrap`` only, and are applied in this order
    (a later rule wins where paths nest): ``concealed`` paths become empty
    read-only directories, ``writable`` paths are bound read-write inside
    them, ``readonly`` paths are bound read-only (re-exposed, or protected
    from writes), and ``hidden`` paths become empty last of all (a directory
    an empty read-only one, a file ``/dev/null``).
    """

    level: Level = "process"
    limits: Limits = Limits()
    writable: tuple[Path, ...] = ()
    concealed: tuple[Path, ...] = ()
    readonly: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    devices: tuple[Path, ...] = ()  # device nodes passed through (GPUs)
    bwrap: str = "bwrap"  # the executable, absolute once checked
    drop_caps: bool = False  # running as root: the command must not keep root's capabilities


# --- building one phase's sandbox (reads the filesystem) --------------------------------


def for_phase(
    run: RunPhase,
    *,
    study_root: Path,
    study_dir: Path,
    protected: Iterable[str] = (),
    hide: bool = True,
    environ: Mapping[str, str] | None = None,
    sealed_from: Path | None = None,
    readonly: Iterable[Path] = (),
) -> Sandbox:
    """The sandbox of one phase of a candidate checked out at ``study_dir``.

    ``study_root`` is the user's study directory (its repository is what
    gets concealed); ``protected`` are paths relative to ``study_dir``;
    ``hide`` applies ``[run] hide`` (the smoke and run phases, not evaluate).
    A sealed phase passes its sealed directory as ``study_dir`` (writable as
    it is, whatever holds it), the candidate's study directory as
    ``sealed_from`` (its whole worktree is concealed) and its ``code/`` in
    ``readonly``.
    """
    limits = Limits.from_phase(run)
    if run.sandbox == "none":
        return Sandbox("none", Limits())
    if run.sandbox == "process":
        return Sandbox("process", limits)
    environ = os.environ if environ is None else environ
    worktree = _real(study_dir if sealed_from else _checkout_root(study_dir))
    concealed = _dedupe(
        [_real(Path(p)) for p in _SERVICE_DIRS if os.path.isdir(p)]
        + [_real(p) for p in _repositories(study_root)]
        + ([_real(_checkout_root(sealed_from))] if sealed_from else [])
    )
    extra_readonly = [_real(p) for p in readonly]
    readonly = [p for p in _environment_dirs() if _inside_any(p, concealed)]
    readonly = [p for p in readonly if not _inside(p, worktree)] + extra_readonly
    for rel in protected:
        path = study_dir / rel
        if path.is_file() and not path.is_symlink():
            readonly.append(_real(path))
    wanted = [(raw, expand_path(raw, environ, study_dir)) for raw in run.hide] if hide else []
    sandbox = Sandbox(
        "bwrap",
        limits,
        writable=(worktree,),
        concealed=tuple(p for p in concealed if p != Path("/")),
        readonly=tuple(_dedupe(readonly)),
        devices=tuple(Path(p) for p in _gpu_devices()),
        bwrap=require_bwrap(),
        drop_caps=os.geteuid() == 0,
    )
    found = [(raw, _real(p)) for raw, p in wanted if p is not None and os.path.lexists(p)]
    for raw, path in found:
        if _inside(worktree, path):
            raise ConfigError(
                f"[run] hide = {raw!r} would hide the candidate's own checkout {worktree}"
                " — hide something narrower"
            )
    return _with_hidden(sandbox, [path for _, path in found])


def _with_hidden(sandbox: Sandbox, paths: list[Path]) -> Sandbox:
    """Keep the hide paths the command could otherwise see (bwrap cannot mount into the rest)."""
    visible = [p for p in _dedupe(paths) if _visible(sandbox, p)]
    return replace(sandbox, hidden=tuple(visible))


def expand_path(raw: str, environ: Mapping[str, str], base: Path) -> Path | None:
    """A ``hide`` entry as a path: ``$VAR``/``${VAR}`` and ``~`` expanded, relative to ``base``.

    None when it names a variable that is unset or empty: ``${DATA}/val``
    must not become ``/val``.
    """
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        found = environ.get(match.group(1) or match.group(2), "")
        missing = missing or not found
        return found

    text = _VAR.sub(value, raw).strip()
    if missing or not text:
        return None
    if text == "~" or text.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        text = home + text[1:]
    elif text.startswith("~"):
        text = os.path.expanduser(text)
    path = Path(text)
    return path if path.is_absolute() else base / path


def _checkout_root(study_dir: Path) -> Path:
    """The candidate's worktree: the nearest directory holding a ``.git`` (file or folder)."""
    for path in (study_dir, *study_dir.parents):
        if os.path.lexists(path / ".git"):
            return path
    return study_dir


def _repositories(study_root: Path) -> list[Path]:
    """The user's checkout holding the study, and the main checkout when that is a worktree."""
    root = _checkout_root(study_root.resolve())
    found = [root]
    dotgit = root / ".git"
    if dotgit.is_file():
        common = _common_dir(dotgit)
        if common is not None:
            found.append(common.parent if common.name == ".git" else common)
    return found


def _common_dir(dotgit: Path) -> Path | None:
    """Where a linked worktree's repository lives (``gitdir:`` then ``commondir``)."""
    try:
        line = dotgit.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    gitdir = (dotgit.parent / line.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (gitdir / "commondir").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return gitdir
    return (gitdir / common).resolve()


def _environment_dirs() -> list[Path]:
    """Where ``python`` in a study command comes from: Ratchet's own interpreter and venv.

    And Ratchet's own package, which an editable install keeps in its source
    checkout: a sealed evaluator imports ``ratchet.evaluation`` from there.
    """
    package = Path(__file__).resolve().parents[1]
    roots = (sys.prefix, sys.exec_prefix, sys.base_prefix, package)
    return _dedupe(_real(Path(p)) for p in roots)


def _gpu_devices() -> list[str]:
    """NVIDIA and DRM device nodes: ``--dev /dev`` alone would leave CUDA without a GPU."""
    return sorted(glob.glob("/dev/nvidia*")) + [p for p in ("/dev/dri",) if os.path.exists(p)]


def _real(path: Path) -> Path:
    """Symlinks resolved: bwrap mounts on the target, and prefixes must compare equal."""
    return Path(os.path.realpath(path))


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _inside_any(path: Path, roots: Iterable[Path]) -> bool:
    return any(_inside(path, root) for root in roots)


def _visible(sandbox: Sandbox, path: Path) -> bool:
    """Whether ``path`` is visible in the sandbox before ``hidden`` is applied.

    The innermost rule that covers it decides: the read-only root and the
    writable and read-only binds show it; the private /tmp and the concealed
    directories do not.
    """
    rules = [(Path("/"), True), (Path(_PRIVATE_TMP), False)]
    rules += [(p, False) for p in sandbox.concealed]
    rules += [(p, True) for p in (*sandbox.writable, *sandbox.readonly)]
    covering = [
        (len(root.parts), order, shown)
        for order, (root, shown) in enumerate(rules)
        if _inside(path, root)
    ]
    return max(covering)[2]


# --- pure functions: the argv prefix and the rlimits ------------------------------------


def bwrap_prefix(
    sandbox: Sandbox, cwd: Path, is_dir: Callable[[str], bool] = os.path.isdir
) -> list[str]:
    """The bubblewrap arguments that go before ``/bin/sh -c COMMAND`` (``[]`` below bwrap).

    No ``--new-session``: the runner already starts the command in a session
    of its own, and keeping bwrap's processes in the command's process group
    lets the runner kill the group at once.
    """
    if sandbox.level != "bwrap":
        return []
    args = [sandbox.bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    if sandbox.drop_caps:
        args += ["--cap-drop", "ALL"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev"]
    for device in map(str, sandbox.devices):
        args += ["--dev-bind", device, device]
    args += ["--proc", "/proc", "--tmpfs", _PRIVATE_TMP]
    for path in map(str, sandbox.concealed):
        args += ["--tmpfs", path]
    for path in map(str, sandbox.writable):
        args += ["--bind", path, path]
    for path in map(str, sandbox.readonly):
        args += ["--ro-bind", path, path]
    for path in map(str, sandbox.concealed):
        args += ["--remount-ro", path]
    for path in map(str, sandbox.hidden):
        if is_dir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
        else:
            args += ["--dev-bind", "/dev/null", path]  # a --ro-bind is nodev: unreadable
    return [*args, "--chdir", str(cwd), "--"]


def rlimits(
    limits: Limits, *, hard: Mapping[int, int], root: bool, tasks: int | None
) -> list[tuple[int, int]]:
    """``(resource, value)`` pairs to set as soft and hard limit in the command's process.

    ``hard`` holds Ratchet's own hard limits (a value is capped at them;
    ``RLIM_INFINITY`` is no cap); ``tasks`` is the number of tasks running on
    the machine now, the base of the ``RLIMIT_NPROC`` backstop for non-root
    users (the kernel counts all of a user's tasks, and ignores it for root;
    None: unknown, no backstop).
    """
    wanted = [
        (resource.RLIMIT_DATA, limits.memory_bytes),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
    ]
    if not root and tasks is not None and limits.processes is not None:
        wanted.append((resource.RLIMIT_NPROC, tasks + limits.processes))
    pairs = []
    for which, value in wanted:
        if value is None:
            continue
        cap = hard.get(which, resource.RLIM_INFINITY)
        pairs.append((which, value if cap == resource.RLIM_INFINITY else min(value, cap)))
    return pairs


def child_rlimits(limits: Limits) -> list[tuple[int, int]]:
    """``rlimits`` for a command started from this process, on this machine, now."""
    root = os.geteuid() == 0
    hard = {which: resource.getrlimit(which)[1] for which in _RLIMITS}
    tasks = _tasks_running() if not root and limits.processes is not None else None
    return rlimits(limits, hard=hard, root=root, tasks=tasks)


def _tasks_running() -> int | None:
    """Tasks (threads included) on the machine now, from /proc/loadavg; None without it."""
    try:
        with open("/proc/loadavg", "rb") as file:
            return int(file.read().split()[3].split(b"/")[1])
    except (OSError, ValueError, IndexError):
        return None


def limit_hint(limits: Limits, returncode: int | None, tail: str) -> str:
    """The configured limit a failed command most likely ran into, as a clause; '' if none."""
    xfsz = int(signal.SIGXFSZ)
    if limits.file_bytes is not None and (
        returncode in (-xfsz, 128 + xfsz) or "File too large" in tail
    ):
        return f"hit the {limits.file_bytes / _MB:g} MB file size limit ([run] max_file_mb)"
    if limits.open_files is not None and "Too many open files" in tail:
        return f"hit the {limits.open_files}-open-files limit ([run] max_open_files)"
    if limits.memory_bytes is not None and any(sign in tail for sign in _MEMORY_SIGNS):
        return (
            f"probably hit the {limits.memory_bytes / _MB:g} MB memory limit ([run] max_memory_mb)"
        )
    return ""


# --- availability -----------------------------------------------------------------------


def require_bwrap() -> str:
    """The path of a working ``bwrap`` on PATH, or SandboxError saying what to install."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(
            f'sandbox = "bwrap" needs bubblewrap: {_INSTALL}, or set [run] sandbox = "process"'
        )
    problem = _probe(path, os.geteuid() == 0)
    if problem:
        raise SandboxError(
            f"bwrap cannot create namespaces here: {problem} — allow unprivileged user"
            " namespaces (e.g. sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
            ' or set [run] sandbox = "process"'
        )
    return path


@functools.cache
def _probe(bwrap: str, root: bool) -> str:
    """Run a trivial command with the options every run uses; '' when it works (cached)."""
    sandbox = Sandbox("bwrap", bwrap=bwrap, drop_caps=root)
    argv = [*bwrap_prefix(sandbox, Path("/")), "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def check_available(level: Level) -> None:
    """Raise SandboxError (one sentence: why, and what to install) unless ``level`` works here."""
    if level != "none" and not hasattr(resource, "prlimit"):
        raise SandboxError(
            f'sandbox = "{level}" sets resource limits with prlimit, which only Linux has'
            ' — set [run] sandbox = "none" here'
        )
    if level == "bwrap":
        if not sys.platform.startswith("linux"):
            raise SandboxError(
                'sandbox = "bwrap" needs Linux (bubblewrap uses Linux namespaces)'
                ' — set [run] sandbox = "process"'
            )
        require_bwrap()


def describe(level: Level, hide: Iterable[str] = ()) -> str:
    """One line for ``ratchet doctor``; raises SandboxError when the level does not work here."""
    check_available(level)
    ignored = '; [run] hide takes effect only with sandbox = "bwrap"' if list(hide) else ""
    if level == "none":
        return "none: no limits — candidate code runs with your full permissions" + ignored
    if level == "process":
        try:
            check_available("bwrap")
            better = 'bwrap also works here (sandbox = "bwrap": no network, read-only files)'
        except SandboxError:
            better = f'for no network and read-only files: {_INSTALL}, sandbox = "bwrap"'
        return f"process: resource limits; {better}{ignored}"
    return f"bwrap: no network, read-only files, repository hidden ({shutil.which('bwrap')})"
