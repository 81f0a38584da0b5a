"""How much a study's commands may do: resource limits, and bubblewrap isolation.

``[run] sandbox`` picks the level for every phase (smoke, run, evaluate).
What every level gets from the runner (``runner.py``): the budget, the
whole-tree kill at budget + grace, a capped log, the scrubbed environment
(``environment.py``: no secret-looking variable, and none in the
environment block of Ratchet or its shepherd either), and a tree kill that
survives the death of the shepherd (the phase's cgroup v2 where Ratchet may
create one, Ratchet as child subreaper otherwise).

``auto`` (default)
    The strongest level that works on this machine (``resolve``): ``bwrap``
    where bubblewrap can create its namespaces (and, as root, ``setpriv``
    exists), else ``process``, else ``none``. When it falls back, every
    ``ratchet run``, ``try`` and ``status`` prints one warning line saying
    what the level it got does not stop (so does ``none`` chosen by name);
    ``ratchet doctor`` says what ``auto`` resolves to.

``none``
    No limits beyond the runner's own.
    Candidate code runs with the user's full permissions.

``process``
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

    What it does *not* stop: the command runs as the user who runs Ratchet.
    It reaches the network, reads and writes every file that user can (the
    repository and its ``.git``, the ledger, other worktrees, ``~/.ssh``,
    keys in dotfiles), sees every process and may signal or (where ptrace
    is allowed) read the memory of those of the same user: Ratchet itself
    and its shepherd included, and any other process that was started with
    a key in its environment (the shell that exported it). As root it can
    also leave the phase's cgroup and set ``chattr +i`` on files.

``bwrap``
    The limits above, and the command runs inside bubblewrap: no network
    (its own loopback only), the whole filesystem read-only, a private empty
    ``/tmp``, empty ``/run`` (service sockets, container secrets), and the
    user's repository replaced by an empty directory, so neither its files,
    its ``.git``, the ledger nor other worktrees can be seen. In the smoke
    and run phases the user's home directory (``$HOME`` and the account's)
    is empty too. Inside it the candidate's worktree is bound writable,
    Ratchet's Python environment (and user site-packages) is re-exposed
    read-only when it lives in a hidden directory, the study's protected
    files are read-only, and ``[run] hide`` paths are empty in the smoke and
    run phases (visible to the evaluate phase). Later rules win: repository
    and home hidden < worktree writable < read-only paths < ``hide``. The
    command has its own PID namespace (its ``/proc`` shows nothing of the
    host's processes, so neither Ratchet nor its shepherd can be signalled
    or read). GPU device nodes (``/dev/nvidia*``, ``/dev/dri``) are passed
    through.

    When Ratchet runs as root, the command runs as uid/gid 65534
    (``SANDBOX_UID``, "nobody") with no capabilities: bwrap starts as root
    with every capability dropped but the four ``setpriv`` needs
    (``_SWITCH_CAPS``), and ``setpriv`` switches real, effective and saved
    ids to the unprivileged user just before ``/bin/sh``, which clears them,
    and empties the bounding and inheritable sets; bwrap's
    ``no_new_privs`` keeps setuid programs from giving any back. So it
    cannot ``chattr +i``, read root-only files, or signal the sandbox's own
    init. The runner hands it its worktree
    (``grant``: ``chown`` without following links) before each phase, and
    directories on the way that others may not enter (a 0700 home or
    ``mkdtemp``) are replaced by empty ones (``_unsearchable``) so that it
    can reach what it is given. A user namespace with ``--uid`` was not
    enough: it maps the command back to uid 0 outside, owner of every
    root-only file.

    What it does not stop: reading what is world-readable outside the
    hidden directories (system files, other users' readable files), using
    the CPU, memory and GPU within the limits, and timing side channels.

    ``hide`` entries: ``~`` and ``$VAR``/``${VAR}`` are expanded from
    Ratchet's environment; an entry naming an unset or empty variable, or a
    path that does not exist, is skipped; a relative entry is relative to
    the study directory in the candidate's worktree. A hidden directory is
    an empty read-only directory, a hidden file reads as empty
    (``/dev/null``). An entry that would hide the worktree itself is a
    ``ConfigError``.

A study that asks for a level by name that this machine cannot provide fails
at start (``check_available``), never silently runs with less; only
``auto`` falls back, and says so.
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import re
import resource
import shutil
import signal
import site
import stat
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
    "Requested",
    "SANDBOX_UID",
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
    "resolve",
    "warning",
    "grant",
    "describe",
]

Level = Literal["none", "process", "bwrap"]
Requested = Literal["auto", "none", "process", "bwrap"]  # what ``[run] sandbox`` may say

SANDBOX_UID = 65534  # "nobody": who the command runs as under bwrap when Ratchet is root
# What bwrap keeps until setpriv switches to SANDBOX_UID: enter the worktree (owned by that
# user, maybe 0700), switch, and empty the bounding and inheritable sets on the way.
_SWITCH_CAPS = ("CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
_PROCESS_GAPS = (
    "candidate code can still use the network, read and write your files"
    " (the repository, the ledger, ~/.ssh) and signal your other processes"
)

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
    user: int | None = None  # running as root: the uid (and gid) the command runs as
    setpriv: str = "setpriv"  # what switches to ``user`` inside the sandbox


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
    ``hide`` applies ``[run] hide`` and conceals the user's home directory
    (the smoke and run phases, not evaluate). ``sandbox = "auto"`` is
    resolved here (``resolve``). A sealed phase passes its sealed directory
    as ``study_dir`` (writable as it is, whatever holds it), the candidate's
    study directory as ``sealed_from`` (its whole worktree is concealed) and
    its ``code/`` in ``readonly``.
    """
    limits = Limits.from_phase(run)
    level = resolve(run.sandbox)
    if level == "none":
        return Sandbox("none", Limits())
    if level == "process":
        return Sandbox("process", limits)
    environ = os.environ if environ is None else environ
    root = os.geteuid() == 0
    worktree = _real(study_dir if sealed_from else _checkout_root(study_dir))
    repositories = [_real(p) for p in _repositories(study_root)]
    if any(_inside(repo, worktree) for repo in repositories):
        raise SandboxError(
            f"{study_dir} is not inside a worktree of its own (it resolves to {worktree},"
            " which holds the user's repository); a phase can only run in a candidate's checkout"
        )
    concealed = [_real(Path(p)) for p in _SERVICE_DIRS if os.path.isdir(p)]
    concealed += repositories
    concealed += [_real(_checkout_root(sealed_from))] if sealed_from else []
    concealed += _homes(environ) if hide else []
    extra_readonly = [_real(p) for p in readonly]
    if root:  # the unprivileged user must be able to walk to what it is given
        reachable = (worktree, *_environment_dirs(), *extra_readonly)
        concealed += _unsearchable(reachable, tuple(concealed))
    # Ratchet's Python, venv and package stay usable wherever they live: inside a hidden
    # directory, or under the private /tmp (a checkout or venv in /tmp, as CI may have).
    hiding = [*concealed, _real(Path(_PRIVATE_TMP))]
    readonly = [p for p in _environment_dirs() if _inside_any(p, hiding)]
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
        concealed=tuple(_outermost_first(p for p in concealed if p != Path("/"))),
        readonly=tuple(_dedupe(readonly)),
        devices=tuple(Path(p) for p in _gpu_devices()),
        bwrap=require_bwrap(),
        drop_caps=root,
        user=SANDBOX_UID if root else None,
        setpriv=(shutil.which("setpriv") or "setpriv") if root else "setpriv",
    )
    found = [(raw, _real(p)) for raw, p in wanted if p is not None and os.path.lexists(p)]
    for raw, path in found:
        if _inside(worktree, path):
            raise ConfigError(
                f"[run] hide = {raw!r} would hide the candidate's own checkout {worktree}"
                " — hide something narrower"
            )
    return _with_hidden(sandbox, [path for _, path in found])


def _homes(environ: Mapping[str, str]) -> list[Path]:
    """The user's home directories (``$HOME`` and the account's): keys, caches, shell history."""
    found = [environ.get("HOME", "")]
    try:
        found.append(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        pass
    homes = [_real(Path(p)) for p in found if p and os.path.isdir(p)]
    return _dedupe(p for p in homes if p != Path("/"))


@functools.lru_cache(maxsize=64)  # the same worktree and environment at every phase
def _unsearchable(targets: tuple[Path, ...], concealed: tuple[Path, ...]) -> tuple[Path, ...]:
    """The outermost directories on the way to ``targets`` that others may not enter.

    The command runs as ``SANDBOX_UID``; such a directory (``mkdtemp``'s
    0700, a 0750 home) would stop it short of its own worktree. Concealed,
    it becomes an empty searchable directory with the targets bound inside:
    nothing the unprivileged user could have read is shown.
    """
    found: list[Path] = []
    for target in targets:
        for parent in reversed(target.parents):
            if _inside_any(parent, [*concealed, *found, Path(_PRIVATE_TMP)]) or parent == Path("/"):
                continue
            try:
                mode = os.stat(parent).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                found.append(parent)
                break
    return tuple(found)


def _outermost_first(paths: Iterable[Path]) -> list[Path]:
    """Mount order: a directory before the directories inside it."""
    return sorted(_dedupe(paths), key=lambda path: len(path.parts))


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


@functools.cache
def _environment_dirs() -> tuple[Path, ...]:
    """Where ``python`` in a study command comes from: Ratchet's interpreter, venv, user site.

    And Ratchet's own package, which an editable install keeps in its source
    checkout: a sealed evaluator imports ``ratchet.evaluation`` from there.
    """
    dirs = [sys.prefix, sys.exec_prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return tuple(_dedupe(_real(Path(p)) for p in dirs))


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
    if sandbox.user is not None:  # kept for bwrap's --chdir and setpriv; all go with root
        for cap in _SWITCH_CAPS:
            args += ["--cap-add", cap]
    args += ["--ro-bind", "/", "/", "--dev", "/dev"]
    for device in map(str, sandbox.devices):
        args += ["--dev-bind", device, device]
    args += ["--proc", "/proc"]
    if sandbox.user is not None:
        args += ["--perms", "1777"]  # the private /tmp is the unprivileged user's too
    args += ["--tmpfs", _PRIVATE_TMP]
    for path in map(str, sandbox.concealed):
        args += ["--tmpfs", path]
    if sandbox.user is not None:  # bwrap would make them 0700, closed to the user
        for path in map(str, _skeleton(sandbox)):
            args += ["--perms", "0755", "--dir", path]
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
    args += ["--chdir", str(cwd), "--"]
    if sandbox.user is not None:
        user = str(sandbox.user)
        args += [sandbox.setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        args += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    return args


def _skeleton(sandbox: Sandbox) -> list[Path]:
    """The directories bwrap must create inside its empty ones to reach the bound paths."""
    empty = [Path(_PRIVATE_TMP), *sandbox.concealed]
    found: list[Path] = []
    for target in (*sandbox.writable, *sandbox.readonly):
        for parent in reversed(target.parents):
            inside_empty = any(parent != root and _inside(parent, root) for root in empty)
            if inside_empty and not _inside_any(parent, sandbox.writable):
                found.append(parent)
    return [p for p in _outermost_first(found) if p not in empty]


def grant(sandbox: Sandbox) -> None:
    """Give the sandbox's user its writable paths (root only; a no-op otherwise).

    Ratchet, as root, writes the worktree as root; the command runs as
    ``sandbox.user`` and must be able to write it. Symlinks are never
    followed, and a file with other hard links is left alone: a link to a
    file outside is not the command's to own.
    """
    if sandbox.user is None:
        return
    uid = sandbox.user
    for top in sandbox.writable:
        _own(top, uid)
        for folder, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                _own(Path(folder) / name, uid)


def _own(path: Path, uid: int) -> None:
    try:
        info = os.lstat(path)
        if info.st_uid == uid or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
            return
        os.chown(path, uid, uid, follow_symlinks=False)
    except OSError:
        pass


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
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv")
    if root and setpriv is None:
        raise SandboxError(
            'sandbox = "bwrap" run as root needs setpriv to run candidates as an unprivileged'
            ' user: apt-get install util-linux (or dnf install util-linux),'
            ' or set [run] sandbox = "process"'
        )
    problem = _probe(path, root, setpriv or "setpriv")
    if problem:
        raise SandboxError(
            f"bwrap cannot create namespaces here: {problem} — allow unprivileged user"
            " namespaces (e.g. sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
            ' or set [run] sandbox = "process"'
        )
    return path


@functools.cache
def _probe(bwrap: str, root: bool, setpriv: str = "setpriv") -> str:
    """Run a trivial command with the options every run uses; '' when it works (cached)."""
    user = SANDBOX_UID if root else None
    sandbox = Sandbox("bwrap", bwrap=bwrap, drop_caps=root, user=user, setpriv=setpriv)
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


def check_available(level: Requested) -> None:
    """Raise SandboxError (one sentence: why, and what to install) unless ``level`` works here.

    ``auto`` always works: it is whatever ``resolve`` finds.
    """
    if level == "auto":
        return
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


def _problem(level: Level) -> str:
    """Why ``level`` does not work here; '' when it does."""
    try:
        check_available(level)
    except SandboxError as error:
        return str(error)
    return ""


def resolve(requested: Requested) -> Level:
    """The level a study runs at: ``auto`` is the strongest that works here, else as asked."""
    if requested != "auto":
        return requested
    for level in ("bwrap", "process"):
        if not _problem(level):
            return level
    return "none"


def warning(requested: Requested) -> str | None:
    """One line for every run where ``auto`` fell back below bwrap, or at level ``none``.

    None otherwise: bwrap, and ``process`` chosen by name (a choice made
    knowingly, e.g. for the GPU study that needs the host's data cache).
    """
    level = resolve(requested)
    if level == "bwrap" or requested == "process":
        return None
    if requested == "auto":
        why = _problem("bwrap" if level == "process" else "process")
        how = f'sandbox = "auto" fell back to "{level}" here ({_lowered(why)})'
    else:
        how = f'sandbox = "{level}"'
    if level == "none":
        return f"warning: {how}: candidate code runs with your full permissions"
    return f"warning: {how}: {_PROCESS_GAPS}"


def _lowered(sentence: str) -> str:
    """A SandboxError's sentence as a clause: its advice to change the setting is dropped."""
    clause = sentence.split(" — ")[0].split(", or set [run] sandbox")[0]
    return clause.rstrip(".")


def describe(level: Requested, hide: Iterable[str] = ()) -> str:
    """One line for ``ratchet doctor``; raises SandboxError when the level does not work here."""
    check_available(level)
    if level == "auto":
        resolved = resolve(level)
        return f"auto → {describe(resolved, hide)}"
    ignored = '; [run] hide takes effect only with sandbox = "bwrap"' if list(hide) else ""
    if level == "none":
        return "none: no limits — candidate code runs with your full permissions" + ignored
    if level == "process":
        why = _problem("bwrap")
        better = (
            'bwrap also works here (sandbox = "bwrap": no network, read-only files)'
            if not why
            else f"no bwrap: {_lowered(why)}"
        )
        return f"process: resource limits; {better}{ignored}"
    user = f", runs as uid {SANDBOX_UID}" if os.geteuid() == 0 else ""
    return (
        "bwrap: no network, read-only files, repository and home hidden"
        f"{user} ({shutil.which('bwrap')})"
    )
