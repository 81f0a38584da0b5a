"""The few git operations Ratchet needs: worktrees, refs and commits.

This is the only module that runs git. Everything else asks it for a
``Repo`` (the user's checkout) or a ``Worktree`` (a detached checkout under
``.ratchet/worktrees/`` where candidates run).

Promises:

- The user's checkout, index and current branch are never touched. The only
  writes outside Ratchet's worktrees are ``info/exclude`` (``Repo.exclude``),
  refs under ``refs/ratchet/`` and ``refs/heads/ratchet/``, new objects and
  the worktrees' registrations. Git commands for a worktree name its git
  directory and work tree explicitly, so a run that deletes or rewrites the
  worktree's ``.git`` file cannot make them act on the user's checkout.
- No hook ever runs (``core.hooksPath=/dev/null`` on every call, plumbing
  only) and nothing is signed, so an experiment never waits on a prompt.
- Every failure of a git call is a ``GitError`` naming the command and git's
  first line of stderr.

Speed. ``Worktree.reset`` + ``Worktree.commit`` + ``Repo.update_refs`` run for
every experiment, and one git process costs 2-3 ms, so the hot path uses two
git calls in the steady state (``reset --hard``, ``update-ref --stdin``) plus
one ``ls-tree`` the first time a commit is seen:

- ``reset`` removes untracked and ignored files itself, from the target
  commit's file listing (commits are immutable, so the listing is cached by
  sha), instead of running ``git clean``.
- ``commit`` writes the edited files' blobs, the changed trees and the commit
  as loose objects (``gitobjects``). Blobs are stored byte for byte:
  clean filters (``.gitattributes`` eol conversion, LFS) are not applied to
  edited files. The worktree's HEAD and index stay at the last reset; the
  files on disk are exactly the new commit.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..errors import CleanupError, GitError
from ..removal import remove_tree
from .objects import (
    SUBMODULE_MODE,
    TREE_MODE,
    ObjectWriter,
    Snapshot,
    build_tree,
    check_conflicts,
)

__all__ = ["Repo", "Worktree"]

GIT_MISSING = (
    "git is not installed or not on PATH — install git (e.g. apt-get install git) and try again"
)
FALLBACK_NAME = "Ratchet"
FALLBACK_EMAIL = "ratchet@localhost"
# ``ratchet-island/<tag>/<k>``: the islands policy's branches. They cannot live under
# ``ratchet/<tag>/`` because git refuses a ref below another ref (``ratchet/<tag>``).
OWN_REF_PREFIXES = ("refs/ratchet/", "refs/heads/ratchet/", "refs/heads/ratchet-island/")
# Options on every call: no hooks, no fsmonitor daemons in our worktrees, no
# opportunistic index refresh in the user's checkout, no signing prompts.
GLOBAL_OPTIONS = tuple(
    "-c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false"
    " --no-optional-locks".split()
)
# Variables that would point git at another repository, index, object store or
# ref namespace than the one we ask about (set when Ratchet runs from a git hook).
SCRUBBED_ENV = frozenset(
    "GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES"
    " GIT_COMMON_DIR GIT_NAMESPACE GIT_PREFIX GIT_INTERNAL_SUPER_PREFIX GIT_QUARANTINE_PATH".split()
)
SNAPSHOT_CACHE_SIZE = 32


# --- running git -------------------------------------------------------------


def _git_env() -> dict[str, str]:
    """The caller's environment minus variables that redirect git elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _describe(args: Sequence[str]) -> str:
    """The command as a user would type it, shortened for an error message."""
    text = "git " + " ".join(args)
    return text if len(text) <= 160 else text[:157] + "..."


def _first_line(data: bytes) -> str:
    """The first non-empty line of git's stderr, the part that says what failed."""
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return "no error message"


def _run_git(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    ok: tuple[int, ...] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run one git command; every way it can fail becomes a ``GitError``.

    No timeout: these are local commands that fail fast on a lock, and
    ``subprocess`` polls with sleeps when given one, adding ~1 ms per call.
    """
    try:
        proc = subprocess.run(
            ["git", *GLOBAL_OPTIONS, *args],
            cwd=cwd,
            env=env,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        if not cwd.is_dir():
            raise GitError(f"{cwd} does not exist — check the path and try again") from None
        raise GitError(GIT_MISSING) from None
    except OSError as exc:
        raise GitError(f"`{_describe(args)}` could not start: {exc}") from None
    if proc.returncode not in ok:
        raise GitError(f"`{_describe(args)}` failed: {_first_line(proc.stderr)}")
    return proc


# --- files in a worktree -----------------------------------------------------


def _remove(path: str, is_dir: bool) -> None:
    """Delete a file, symlink or whole directory (never following a link, at any depth)."""
    if is_dir:
        remove_tree(path)
    else:
        os.unlink(path)


def _clean(root: Path, snapshot: Snapshot) -> None:
    """Remove everything under ``root`` that the snapshot does not track.

    Untracked and ignored files alike go (``git clean -ffdx``), without
    descending into directories that hold nothing tracked. Tracked paths are
    left for ``git reset --hard``, except where a file stands in for a
    tracked directory or a directory for a tracked file.
    """
    pending = [""]
    while pending:
        rel = pending.pop()
        entries = snapshot.dirs.get(rel, {})
        with os.scandir(root / rel if rel else root) as scan:
            for entry in scan:
                if rel == "" and entry.name == ".git":
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                mode = entries.get(entry.name, ("", ""))[0]
                if mode == TREE_MODE and is_dir:
                    pending.append(f"{rel}/{entry.name}" if rel else entry.name)
                elif mode == SUBMODULE_MODE:
                    continue
                elif not mode or is_dir or mode == TREE_MODE:
                    _remove(entry.path, is_dir)


def _check_edit_path(path: str) -> str:
    """Normalize a repo-relative edit path; refuse anything that could leave the tree."""
    clean = path.replace(os.sep, "/")
    while clean.startswith("./"):
        clean = clean[2:]
    parts = clean.split("/")
    bad = (
        not clean
        or clean.startswith("/")
        or "\0" in clean
        or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)
    )
    if bad:
        raise GitError(f"edit path {path!r} is not a plain path inside the repository")
    return clean


def _write_file(root: Path, rel: str, data: bytes) -> None:
    """Write one edited file, never through a symlink (it could lead out of the tree)."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            raise GitError(f"edit path {rel!r} goes through {part!r}, a symlink in the worktree")
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o666
    try:
        old = target.lstat()
        mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else mode
        target.unlink()  # a new inode: cheaper than truncating, and never a hard link's target
    except FileNotFoundError:
        pass
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# --- the user's repository ---------------------------------------------------


class Repo:
    """The git repository that contains the study (the user's checkout).

    ``root`` is its top level. Build one with ``Repo.discover``.
    """

    def __init__(self, root: Path, common_dir: Path, objects: Path, algorithm: str) -> None:
        """Use ``Repo.discover``; this only stores what discovery found."""
        self.root = root
        self.common_dir = common_dir
        self._env = _git_env()
        self._objects = ObjectWriter(objects, algorithm)
        self._hex_len = hashlib.new(algorithm).digest_size * 2
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._identity: dict[str, str] | None = None

    @classmethod
    def discover(cls, path: Path) -> Repo:
        """Find the repository containing ``path``; a sentence naming the fix if none."""
        path = Path(os.path.abspath(path))
        if shutil.which("git") is None:
            raise GitError(GIT_MISSING)
        if not path.is_dir():
            raise GitError(f"{path} is not a directory — check the path and try again")
        args = ("rev-parse", "--show-toplevel", "--git-common-dir", "--git-path", "objects")
        try:
            out = _run_git([*args, "--show-object-format"], cwd=path, env=_git_env())
        except GitError as exc:
            raise GitError(_discover_failure(path, str(exc))) from None
        top, common, objects, algorithm = out.stdout.decode().splitlines()[:4]
        return cls(
            Path(top),
            Path(path, common).resolve(),
            Path(path, objects).resolve(),
            algorithm.strip() or "sha1",
        )

    @classmethod
    def init_if_needed(cls, path: Path, message: str) -> bool:
        """Make ``path`` a new repository holding its files in one commit, if it is in none.

        Returns True when it committed. Inside an existing repository nothing
        is touched and it returns False: the user's work is theirs to commit.
        """
        try:
            cls.discover(path)
            return False
        except GitError as exc:
            if "is not inside a git repository" not in str(exc):
                raise
        _run_git(["init", "-q"], cwd=Path(path), env=_git_env())
        repo = cls.discover(path)
        repo._git("add", "-A")
        _run_git(
            ["commit", "-q", "--no-verify", "--no-gpg-sign", "-m", message],
            cwd=repo.root,
            env=repo._commit_env(),
        )
        return True

    # -- plain queries --

    def _git(self, *args: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
        """Run a git command in the repository (or ``cwd``) and return its stdout."""
        return _run_git(args, cwd=cwd or self.root, env=self._env, stdin=stdin).stdout

    def head(self) -> str:
        """The sha of HEAD in the user's checkout."""
        sha = self.rev("HEAD")
        if sha is None:
            raise GitError(
                f"the repository at {self.root} has no commit yet — run "
                "`git add -A && git commit -m 'initial'` there first"
            )
        return sha

    def current_branch(self) -> str | None:
        """The checked-out branch's short name, or None when HEAD is detached."""
        proc = _run_git(
            ["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=self.root, env=self._env, ok=(0, 1)
        )
        return proc.stdout.decode().strip() or None

    def rev(self, ref: str) -> str | None:
        """Resolve ``ref`` to a commit sha, or None when it names no commit."""
        if not ref or ref.startswith("-"):
            return None
        proc = _run_git(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=self.root,
            env=self._env,
            ok=(0, 1),
        )
        sha = proc.stdout.decode().strip()
        return sha if proc.returncode == 0 and sha else None

    def refs(self, prefix: str) -> dict[str, str]:
        """Every ref whose full name starts with ``prefix``, mapped to its sha."""
        pattern = prefix[: prefix.rfind("/") + 1] or "refs/"
        out = self._git("for-each-ref", "--format=%(refname) %(objectname)", pattern)
        found = dict(line.split(" ", 1) for line in out.decode().splitlines() if line)
        return {name: sha for name, sha in found.items() if name.startswith(prefix)}

    def show_file(self, commit: str, path: str) -> bytes | None:
        """A file's bytes at ``commit`` (repo-root-relative path), None when absent."""
        rel = path.replace(os.sep, "/").removeprefix("./")
        if "\n" in rel or "\n" in commit:
            raise GitError(f"path {path!r} contains a newline, which git cannot look up here")
        out = self._git("cat-file", "--batch", stdin=f"{commit}:{rel}\n".encode())
        header, _, rest = out.partition(b"\n")
        fields = header.split(b" ")
        if len(fields) != 3 or fields[1] != b"blob":
            return None
        return rest[: int(fields[2])]

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when commit ``a`` is in ``b``'s history (``a == b`` included)."""
        proc = _run_git(
            ["merge-base", "--is-ancestor", a, b], cwd=self.root, env=self._env, ok=(0, 1)
        )
        return proc.returncode == 0

    def merge_commit(self, head: str, other: str, message: str) -> str:
        """A commit whose parents are ``head`` and ``other`` and whose tree is ``other``'s.

        Not a merge of contents: it records that the branch now carries ``other``
        while keeping ``head``'s history (see ``Workspace.record_refs``).
        """
        out = _run_git(
            ["commit-tree", f"{other}^{{tree}}", "-p", head, "-p", other, "-m", message],
            cwd=self.root,
            env=self._commit_env(),
        ).stdout
        return out.decode().strip()

    def merge_onto(self, commit: str, onto: str, message: str) -> tuple[str | None, list[str]]:
        """Re-apply ``commit``'s change on ``onto``: a three-way merge, as a new commit.

        The merge base is the two commits' common ancestor (a candidate's parent,
        when ``onto`` descends from it). Returns (the new commit on ``onto``, [])
        or (None, the conflicting paths). Nothing is checked out and no ref moves.
        """
        done = _run_git(
            ["merge-tree", "--write-tree", "--name-only", "--no-messages", onto, commit],
            cwd=self.root,
            env=self._env,
            ok=(0, 1),
        )
        lines = done.stdout.decode("utf-8", "replace").splitlines()
        if done.returncode == 1:
            return None, sorted({line for line in lines[1:] if line})
        out = _run_git(
            ["commit-tree", lines[0], "-p", onto, "-m", message],
            cwd=self.root,
            env=self._commit_env(),
        ).stdout
        return out.decode().strip(), []

    def diff(self, a: str, b: str) -> str:
        """Unified diff from commit ``a`` to commit ``b`` (plumbing: user diff config ignored)."""
        out = self._git("diff-tree", "-r", "-p", "--no-color", "--no-ext-diff", a, b, "--")
        return out.decode("utf-8", "replace")

    def diff_stat(self, a: str, b: str) -> tuple[int, int, int]:
        """(lines added, lines removed, files changed) from ``a`` to ``b``; binary files add 0."""
        out = self._git("diff-tree", "-r", "--numstat", "-z", "--no-ext-diff", a, b, "--")
        added = removed = files = 0
        for record in out.split(b"\0"):
            fields = record.split(b"\t")
            if len(fields) < 3:
                continue
            files += 1
            added += int(fields[0]) if fields[0].isdigit() else 0
            removed += int(fields[1]) if fields[1].isdigit() else 0
        return added, removed, files

    def dirty(self, under: str = ".") -> list[str]:
        """Repo-relative paths with uncommitted changes under ``under`` (for a warning)."""
        out = self._git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", under)
        return list(_status_paths(out))

    # -- writes the user can see: info/exclude and Ratchet's own refs --

    def exclude(self, pattern: str = ".ratchet/") -> None:
        """Add ``pattern`` to info/exclude once, so ``git status`` stays clean."""
        path = self.common_dir / "info" / "exclude"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if pattern in (line.strip() for line in text.splitlines()):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not text or text.endswith("\n") else "\n"
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{prefix}{pattern}\n")

    # --- the user's checkout: only `ratchet try` writes there, and only these three ways ---

    def advance_head(self, new: str, old: str, message: str) -> None:
        """Move HEAD (its branch, or a detached HEAD) from ``old`` to ``new``; refuses if
        HEAD moved meanwhile, so a commit made in between is never overwritten."""
        self._git("update-ref", "-m", message, "HEAD", new, old)

    def unstage(self, paths: Sequence[str]) -> None:
        """Make the index match HEAD for ``paths`` (the working files are left alone)."""
        self._git("reset", "-q", "--", *paths)

    def restore_from_head(self, paths: Sequence[str]) -> None:
        """Put ``paths`` back to HEAD, in the index and the working tree."""
        self._git("restore", "--source=HEAD", "--staged", "--worktree", "--", *paths)

    def update_ref(self, ref: str, new: str, old: str | None = None) -> None:
        """Point ``ref`` at ``new``; with ``old``, only if it still points there.

        ``old=""`` means the ref must not exist yet.
        """
        self.update_refs({ref: new}, {ref: old} if old is not None else None)

    def update_refs(
        self, updates: Mapping[str, str], expected: Mapping[str, str] | None = None
    ) -> None:
        """Move several refs in one git call, all or none (``update-ref --stdin``).

        Only Ratchet's own refs may move, and never a branch that some
        checkout has checked out.
        """
        lines = []
        for ref, new in updates.items():
            if not ref.startswith(OWN_REF_PREFIXES):
                raise GitError(
                    f"refusing to move {ref}: Ratchet only writes refs under refs/ratchet/"
                )
            if ref.startswith("refs/heads/"):
                self._refuse_checked_out(ref)
            old = (expected or {}).get(ref)
            lines.append(
                f"update {ref} {new}" + ("" if old is None else f" {old or '0' * self._hex_len}")
            )
        if lines:
            payload = ("\n".join(lines) + "\n").encode()
            self._git("update-ref", "-m", "ratchet", "--stdin", stdin=payload)

    def _refuse_checked_out(self, ref: str) -> None:
        """Moving a checked-out branch would change that checkout's state under the user.

        Reads the HEAD files git itself reads (no subprocess: this is on the hot path).
        """
        heads = [self.common_dir / "HEAD", *self.common_dir.glob("worktrees/*/HEAD")]
        for head in heads:
            try:
                text = head.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if text == f"ref: {ref}":
                where = self.root if head.parent == self.common_dir else head.parent.name
                raise GitError(
                    f"branch {ref.removeprefix('refs/heads/')} is checked out in {where}"
                    " — switch that checkout to another branch and try again"
                )

    # -- worktrees --

    def worktree(self, path: Path, commit: str) -> Worktree:
        """A detached worktree at ``path`` holding exactly ``commit``, reused when healthy.

        A stale one (directory deleted, registration missing or locked after a
        crash, a leftover index.lock) is repaired: unlocked, leftovers
        removed, ``git worktree prune``, added again.
        """
        path = Path(os.path.abspath(path))
        if Path(os.path.realpath(self.root)).is_relative_to(os.path.realpath(path)):
            raise GitError(f"{path} contains the repository itself and cannot be a worktree")
        sha = self._commit_sha(commit)
        record = self._worktree_record(path)
        healthy = record is not None and "locked" not in record and "prunable" not in record
        admin = self._admin_dir(path) if healthy else None
        if admin is None:
            self._recreate_worktree(path, sha, locked=record is not None and "locked" in record)
            admin = self._admin_dir(path)
            if admin is None:
                raise GitError(f"`git worktree add {path}` left no usable worktree there")
        (admin / "index.lock").unlink(missing_ok=True)  # left by a killed reset
        tree = Worktree(self, path, admin)
        tree.reset(sha)
        return tree

    def _admin_dir(self, path: Path) -> Path | None:
        """The worktree's own git directory, if ``path/.git`` and it point at each other.

        Every git command in a worktree names this directory explicitly: were
        the ``.git`` file deleted or rewritten by a run, plain discovery would
        find the user's checkout around it and reset that instead.
        """
        try:
            pointer = (path / ".git").read_text(encoding="utf-8").strip()
            admin = Path(path, pointer.removeprefix("gitdir:").strip())
            back = Path(admin, (admin / "gitdir").read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            return None
        inside = Path(os.path.realpath(admin)).parent == Path(
            os.path.realpath(self.common_dir / "worktrees")
        )
        points_back = os.path.realpath(back) == os.path.realpath(path / ".git")
        return admin if pointer.startswith("gitdir:") and inside and points_back else None

    def abandon_worktree(self, path: Path, into: Path) -> Path:
        """Move a worktree that cannot be cleaned to ``into`` and make git forget it.

        Returns where it went. The next ``worktree(path, ...)`` then starts from
        nothing; what could not be deleted waits in ``into`` for a person
        (``ratchet doctor`` says how). Raises ``CleanupError`` when the
        directory cannot even be moved.
        """
        path = Path(os.path.abspath(path))
        quoted = shlex.quote(str(path))
        record = self._worktree_record(path)
        if record is not None and "locked" in record:
            self._git("worktree", "unlock", str(path))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = into / f"{path.name}-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        try:
            into.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
        except OSError as exc:
            raise CleanupError(
                f"cannot move the worktree {path} out of the way: {exc}"
                f" — delete it by hand (as root: `chattr -R -i -a {quoted}; rm -rf {quoted}`)"
            ) from None
        self.prune_worktrees()
        return target

    def prune_worktrees(self) -> None:
        """Forget worktrees whose directories are gone (after a crash or a manual delete)."""
        self._git("worktree", "prune")

    def _recreate_worktree(self, path: Path, sha: str, *, locked: bool) -> None:
        """Unlock, delete leftovers, prune, then add the worktree afresh (unpopulated)."""
        if locked:
            self._git("worktree", "unlock", str(path))
        try:
            remove_tree(path)
        except OSError as exc:
            raise CleanupError(f"cannot remove the old worktree {path}: {exc}") from None
        self.prune_worktrees()
        self._git("worktree", "add", "--detach", "--no-checkout", str(path), sha)

    def _worktree_records(self) -> Iterator[dict[str, str]]:
        """``git worktree list --porcelain``, one dict per worktree."""
        out = self._git("worktree", "list", "--porcelain").decode("utf-8", "surrogateescape")
        for block in out.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
            if "worktree" in fields:
                yield fields

    def _worktree_record(self, path: Path) -> dict[str, str] | None:
        """The registration of the worktree at ``path``, if git knows one."""
        want = os.path.realpath(path)
        for fields in self._worktree_records():
            if os.path.realpath(fields["worktree"]) == want:
                return fields
        return None

    # -- commit snapshots (shared with Worktree) --

    def _commit_sha(self, commit: str) -> str:
        """A full sha for ``commit``; full hex ids are taken as they are (no git call)."""
        if len(commit) == self._hex_len and all(c in "0123456789abcdef" for c in commit):
            return commit
        sha = self.rev(commit)
        if sha is None:
            raise GitError(f"{commit!r} does not name a commit in {self.root}")
        return sha

    def _snapshot(self, sha: str) -> Snapshot:
        """The tree listing of commit ``sha`` (cached: a commit never changes)."""
        with self._cache_lock:
            snap = self._snapshots.get(sha)
            if snap is not None:
                self._snapshots.move_to_end(sha)
                return snap
        snap = Snapshot.parse(self._git("ls-tree", "-r", "-t", "-z", "--full-tree", sha))
        self._remember(sha, snap)
        return snap

    def _remember(self, sha: str, snap: Snapshot) -> None:
        """Cache a snapshot, dropping the least recently used beyond the limit.

        Locked because worktrees of parallel workers share one ``Repo``.
        """
        with self._cache_lock:
            self._snapshots[sha] = snap
            self._snapshots.move_to_end(sha)
            while len(self._snapshots) > SNAPSHOT_CACHE_SIZE:
                self._snapshots.popitem(last=False)

    def _commit_tree(self, tree: str, parent: str, message: str) -> str:
        """Write the commit object for ``tree`` on ``parent`` (both already in the store).

        Written like the blobs and trees, without a subprocess: this runs once
        per experiment. ``git fsck --strict`` accepts the result (tested).
        """
        env = self._commit_env()
        stamp = f"{int(time.time())} {time.strftime('%z') or '+0000'}"
        people = "".join(
            f"{role} {env[f'GIT_{role.upper()}_NAME']} <{env[f'GIT_{role.upper()}_EMAIL']}>"
            f" {stamp}\n"
            for role in ("author", "committer")
        )
        text = message if message.endswith("\n") else message + "\n"
        body = f"tree {tree}\nparent {parent}\n{people}\n{text}"
        return self._objects.write("commit", body.encode("utf-8"))

    def _commit_env(self) -> dict[str, str]:
        """Environment naming the author: the repository's identity, else Ratchet's."""
        if self._identity is None:
            out = _run_git(
                ["config", "--get-regexp", r"^user\.(name|email)$"],
                cwd=self.root,
                env=self._env,
                ok=(0, 1),
            ).stdout.decode("utf-8", "replace")
            found = dict(line.partition(" ")[::2] for line in out.splitlines())
            name = found.get("user.name", "").strip() or FALLBACK_NAME
            email = found.get("user.email", "").strip() or FALLBACK_EMAIL
            self._identity = {
                **self._env,
                **{f"GIT_{who}_NAME": name for who in ("AUTHOR", "COMMITTER")},
                **{f"GIT_{who}_EMAIL": email for who in ("AUTHOR", "COMMITTER")},
            }
        return self._identity


def _discover_failure(path: Path, detail: str) -> str:
    """Turn git's refusal to find a repository into one sentence naming the fix."""
    if "dubious ownership" in detail:
        return (
            f"git refuses the repository at {path} because another user owns it — run "
            f"`git config --global --add safe.directory {path}` and try again"
        )
    if detail == GIT_MISSING:
        return detail
    return (
        f"{path} is not inside a git repository — run "
        "`git init && git add -A && git commit -m 'initial'` there first"
    )


def _status_paths(out: bytes) -> Iterator[str]:
    """Paths from ``git status --porcelain=v1 -z`` (a rename's source is skipped)."""
    records = iter(out.split(b"\0"))
    for record in records:
        if len(record) < 4:
            continue
        yield os.fsdecode(record[3:])
        if record[:1] in (b"R", b"C"):
            next(records, None)


# --- a worktree under .ratchet/worktrees/ -------------------------------------


class Worktree:
    """A detached checkout where one candidate at a time is built and run."""

    def __init__(self, repo: Repo, path: Path, admin: Path) -> None:
        """Use ``Repo.worktree``, which creates or repairs the checkout first."""
        self.repo = repo
        self.path = path
        self._pin = (f"--git-dir={admin}", f"--work-tree={path}")

    def reset(self, commit: str) -> None:
        """Make the tree exactly ``commit``: nothing a previous run wrote survives.

        Untracked and ignored files are removed here (from the cached listing),
        then one ``git reset --hard`` restores tracked files, the index and HEAD.
        """
        sha = self.repo._commit_sha(commit)
        snapshot = self.repo._snapshot(sha)
        try:
            _clean(self.path, snapshot)
        except OSError as exc:
            raise CleanupError(f"cannot clean worktree {self.path}: {exc}") from None
        try:
            self.repo._git(*self._pin, "reset", "--quiet", "--hard", sha, cwd=self.path)
        except GitError as exc:  # e.g. "unable to unlink old 'train.py'": a file left locked
            raise CleanupError(f"cannot reset worktree {self.path}: {exc}") from None

    def commit(self, parent: str, edits: Mapping[str, str], message: str) -> str:
        """Write ``edits`` (repo-relative path → full text) and commit them on ``parent``.

        Returns the new commit's sha. No branch moves; the caller resets first.
        Edits that change nothing still make a new commit.
        """
        parent_sha = self.repo._commit_sha(parent)
        snapshot = self.repo._snapshot(parent_sha)
        files = {_check_edit_path(p): text.encode("utf-8") for p, text in edits.items()}
        check_conflicts(snapshot, files)
        try:
            for rel, data in files.items():
                _write_file(self.path, rel, data)
            blobs = {rel: self.repo._objects.write("blob", data) for rel, data in files.items()}
            tree, new_snapshot = build_tree(self.repo._objects, snapshot, blobs)
        except PermissionError as exc:  # something the last run left locked
            raise CleanupError(f"cannot write the edits into {self.path}: {exc}") from None
        except OSError as exc:
            raise GitError(f"cannot write the edits into {self.path}: {exc}") from None
        sha = self.repo._commit_tree(tree, parent_sha, message)
        self.repo._remember(sha, new_snapshot)
        return sha
