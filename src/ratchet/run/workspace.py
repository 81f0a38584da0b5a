"""A study's working state for one tag: repository, ledger, worktree, pins, lock.

Opening a workspace is also where a crashed or killed run is repaired: rows
left ``running`` become ``interrupted``, the branch ``ratchet/<tag>`` is moved
forward to the ledger's incumbent (the ledger is the truth; the branch is
derived from it and only moves forward, see ``carry``; ``ratchet invalidate``
is the one exception), missing experiment refs are recreated, stale worktrees
are pruned, and the protected files are pinned — or checked against the pins
the tag started with.

What a tag pins is what is measured (``measured_config`` and the protected
files other than ratchet.toml and the program): a change to one of them needs
a new tag, and the refusal names the key. The program (program.md) is the
human's steering lever and is not pinned: it is read from the user's committed
HEAD before every proposal (``Workspace.program``), so editing and committing
it takes effect from the next proposal, also while ``ratchet run`` runs. A tag
without a measured baseline pins nothing yet: its pins are recorded again on
every open until a baseline has a metric, so a failed baseline can be fixed
and rerun on the same tag.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from ..errors import CleanupError, ConfigError, LedgerError, RatchetError
from ..execute.phases import Candidate, sample_logs
from ..git.repo import Repo, Worktree
from ..models import Experiment, Proposal, incumbent
from ..observer import Observer
from ..safetext import printable
from ..store.ledger import Ledger
from ..study import CONFIG_NAME, Study
from .verify import normalize_path

__all__ = [
    "STATE_DIR",
    "ABANDONED_DIR",
    "IN_PLACE",
    "Workspace",
    "check_tag",
    "fresh_worktree",
    "worktree_path",
    "carry",
    "island_branch",
    "open_ledger",
    "measured_config",
    "pin_changes",
    "results_path",
    "free_tag",
]

STATE_DIR = ".ratchet"
ABANDONED_DIR = "abandoned"  # under STATE_DIR: worktrees that could not be cleaned
SPARES = 3  # worktrees tried next to one that can be neither cleaned nor moved
IN_PLACE = ".in-place.reason"  # the note, under ABANDONED_DIR, of a worktree that could not move
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_tag(tag: str) -> str:
    """Tags name git refs, so they are restricted to a safe alphabet."""
    if not _TAG.match(tag) or tag.endswith(".lock") or ".." in tag:
        raise ConfigError(
            f"--tag {tag!r} is not a valid tag — use letters, digits, '.', '_' or '-'"
            " (e.g. --tag nov26)"
        )
    return tag


def open_ledger(study: Study) -> Ledger:
    """The study's ledger, created on first use."""
    return Ledger(study.root / STATE_DIR / "ledger.sqlite")


@dataclass
class Workspace:
    """Everything one ``ratchet run --tag TAG`` works with, opened and repaired."""

    study: Study
    tag: str
    repo: Repo
    ledger: Ledger
    worktree: Worktree
    study_rel: str
    pinned: dict[str, bytes]
    _lock: IO[str]
    observer: Observer = field(default_factory=Observer)
    budget: float | None = None  # a --budget override of [run] budget (pinned like it)

    @property
    def state_dir(self) -> Path:
        return self.study.root / STATE_DIR

    @property
    def branch_ref(self) -> str:
        return f"refs/heads/ratchet/{self.tag}"

    def exp_ref(self, exp_id: int) -> str:
        return f"refs/ratchet/{self.tag}/exp/{exp_id}"

    @property
    def study_dir(self) -> Path:
        """The study directory inside the candidate worktree."""
        return self.worktree.path / self.study_rel

    @classmethod
    def open(
        cls,
        study: Study,
        tag: str,
        observer: Observer | None = None,
        budget: float | None = None,
        workers: int = 1,
    ) -> Workspace:
        """Open (and repair) the tag's state; the worktree is worker w0's (``worktree_path``)."""
        observer = observer or Observer()
        repo = Repo.discover(study.root)
        repo.head()
        state = study.root / STATE_DIR
        state.mkdir(exist_ok=True)
        repo.exclude(f"{STATE_DIR}/")
        lock = _acquire(state / "locks" / f"{check_tag(tag)}.lock", tag)
        ledger = open_ledger(study)
        study_rel = study.root.relative_to(repo.root.resolve()).as_posix()
        try:
            head = _reconcile(repo, ledger, tag, observer)
            _switch_layout(repo, state / "worktrees" / tag, workers)
            worktree = fresh_worktree(repo, worktree_path(state, tag, 0, workers), head, observer)
            workspace = cls(
                study, tag, repo, ledger, worktree, study_rel, {}, lock, observer, budget
            )
            workspace.pinned = workspace._pin(observer)
            workspace._warn_uncommitted(observer)
        except BaseException:
            ledger.close()
            lock.close()
            raise
        return workspace

    def close(self) -> None:
        self.ledger.close()
        self._lock.close()

    def for_worker(self, index: int, workers: int) -> Workspace:
        """Worker ``index``'s view: the same tag, ledger and repository, its own worktree."""
        if index == 0:
            return self
        path = worktree_path(self.state_dir, self.tag, index, workers)
        head = self.repo.rev(self.branch_ref) or self.repo.head()
        return replace(self, worktree=fresh_worktree(self.repo, path, head, self.observer))

    def experiments(self) -> list[Experiment]:
        """This tag's experiments, oldest first."""
        return self.ledger.experiments(self.tag)

    def checkout(self, commit: str) -> dict[str, str]:
        """Reset the worktree to ``commit``; return its editable files (study-relative).

        A worktree a candidate left uncleanable is replaced, not retried: the
        experiments already recorded keep their rows, and the run goes on.
        """
        try:
            self.worktree.reset(commit)
        except CleanupError as exc:
            self.worktree = fresh_worktree(
                self.repo, self.worktree.path, commit, self.observer, stuck=exc
            )
        root = self.study_dir
        return {
            name: (root / name).read_text(encoding="utf-8", errors="replace")
            for name in self.study.editable_files(root)
        }

    def symlinked(self, proposal: Proposal) -> str | None:
        """An edited path that is a symlink in the worktree (never followed), if any."""
        for raw in proposal.edits:
            path = normalize_path(raw)
            if path and any((self.study_dir / part).is_symlink() for part in _prefixes(path)):
                return path
        return None

    def commit(self, parent: str, proposal: Proposal) -> str:
        """Write the proposal into the worktree as a commit on top of ``parent``.

        A worktree that refuses the files (a directory a candidate made
        immutable) is replaced as in ``checkout``, and the commit made there.
        """
        prefix = "" if self.study_rel in ("", ".") else f"{self.study_rel}/"
        edits = {f"{prefix}{normalize_path(p)}": text for p, text in proposal.edits.items()}
        message = f"{printable(proposal.description) or 'experiment'}\n\nRatchet-Tag: {self.tag}\n"
        try:
            return self.worktree.commit(parent, edits, message)
        except CleanupError as exc:
            self.worktree = fresh_worktree(
                self.repo, self.worktree.path, parent, self.observer, stuck=exc
            )
            return self.worktree.commit(parent, edits, message)

    def check_candidate_pins(self) -> None:
        """The candidate tree's protected files must be the pinned ones, or it would run
        another test (``ratchet try`` builds on the user's HEAD, which may have moved)."""
        for name in self.measured_files:
            data = self.pinned[name]
            path = self.study_dir / name
            if not path.is_file() or path.read_bytes() != data:
                raise ConfigError(
                    f"{name} at HEAD differs from the version tag {self.tag!r} is measured"
                    " with — restore it in a new commit, or pass a new --tag to measure from HEAD"
                )

    @property
    def measured_files(self) -> list[str]:
        """The pinned files that decide what is measured: all but ratchet.toml and the program
        (ratchet.toml is pinned key by key, ``measured_config``; the program steers)."""
        return [n for n in self.pinned if n not in (CONFIG_NAME, self.study.program)]

    @property
    def program(self) -> str:
        """The research strategy as committed at the user's HEAD, read afresh on each call.

        The committed version, not the working copy: "edit and commit program.md"
        is the steering gesture, and a half-written file is never shown to a
        proposer. Falls back to the worktree's copy when HEAD lacks the file.
        """
        with contextlib.suppress(RatchetError):
            data = self._committed(self.study.program)
            if data is not None:
                return data.decode("utf-8", errors="replace")
        return self.pinned[self.study.program].decode("utf-8", errors="replace")

    @property
    def log_dir_template(self) -> str:
        """Where an experiment's logs go; the ledger fills in ``{id}``."""
        return str(self.state_dir / "logs" / "{id}")

    def candidate(self, exp_id: int, seed: int) -> Candidate:
        logs = Path(self.log_dir_template.format(id=exp_id))
        return Candidate(self.study_dir, sample_logs(logs, seed), seed)

    def interrupted(self, reason: str) -> None:
        """Mark what was running as interrupted, and give it its ref."""
        self.ledger.mark_interrupted(self.tag, reason)
        _restore_refs(self.repo, self.tag, self.experiments())

    def island_ref(self, island: int) -> str:
        return island_branch(self.tag, island)

    def record_refs(
        self, exp_id: int, commit: str | None, kept: bool, island: int | None = None
    ) -> None:
        """The experiment's ref and, for a keep, the branch (and its island's): one git
        call, all or none. Branches only move forward (``carry``)."""
        if commit:
            updates = {self.exp_ref(exp_id): commit}
            if kept:
                updates[self.branch_ref] = carry(self.repo, self.branch_ref, commit, exp_id)
                if island is not None:
                    ref = self.island_ref(island)
                    updates[ref] = carry(self.repo, ref, commit, exp_id)
            self.repo.update_refs(updates)

    def export(self) -> Path:
        path = results_path(self.study.root, self.tag)
        self.ledger.export_tsv(path, self.study.metric.name, self.tag)
        return path

    def _pin(self, observer: Observer) -> dict[str, bytes]:
        root = self.study_dir
        pinned = {name: (root / name).read_bytes() for name in self.study.protected_files(root)}
        missing = [n for n in self.study.protected_files() if n not in pinned]
        missing += [n for n in self.study.editable_files() if not (root / n).is_file()]
        if missing:
            raise ConfigError(
                f"{self.study.root / missing[0]} is not committed, and ratchet runs committed"
                f" code — git add it and commit, then rerun"
            )
        hashes = {
            name: hashlib.sha256(self._committed(name) or data).hexdigest()
            for name, data in pinned.items()
            if name not in (CONFIG_NAME, self.study.program)
        }
        hashes.update(measured_config(self.study, self.budget))
        before = self.ledger.pins(self.tag)
        measured = any(
            e.status == "baseline" and e.metric is not None for e in self.experiments()
        )
        if before is not None and measured:
            changes = pin_changes(before, hashes, (CONFIG_NAME, self.study.program))
            if changes:
                raise ConfigError(
                    f"{changes[0]}, which changes what is measured on tag {self.tag!r}"
                    f" — start a new tag with --tag {free_tag(self.tag, self.ledger.tags())}"
                    " (or restore it to resume this tag)"
                )
        self._check_user_copies(pinned)
        legacy = before is not None and not any(k.startswith("[") for k in before)
        if before is None or (before != hashes and (not measured or legacy)):
            # a tag pinned before config keys were pinned one by one gets them now
            self.ledger.record_pins(self.tag, hashes)
        return pinned

    def _committed(self, name: str) -> bytes | None:
        """A study file as committed at the user's HEAD: what the user means to measure.

        The worktree holds the tag's branch, which a commit on the user's branch
        does not reach; comparing HEAD with the pins is what tells "you changed
        what is measured" from "you forgot to commit".
        """
        prefix = "" if self.study_rel in ("", ".") else f"{self.study_rel}/"
        return self.repo.show_file(self.repo.head(), prefix + name)

    def _warn_uncommitted(self, observer: Observer) -> None:
        """Editable files are taken from the commit; say so when the user's copy differs."""
        prefix = "" if self.study_rel in ("", ".") else f"{self.study_rel}/"
        paths = [p.removeprefix(prefix) for p in self.repo.dirty(self.study_rel or ".")]
        changed = [p for p in paths if self.study.is_editable(p)]
        if changed:
            observer.message(
                f"note: {', '.join(changed[:3])} {'has' if len(changed) == 1 else 'have'}"
                " uncommitted changes; ratchet runs the committed version"
            )

    def _check_user_copies(self, pinned: dict[str, bytes]) -> None:
        """The evaluation that runs is the committed one; refuse if the user sees another."""
        for name, data in pinned.items():
            if name in (CONFIG_NAME, self.study.program):
                continue  # ratchet.toml is used as loaded; the program is read from HEAD
            mine = self.study.root / name
            if mine.is_file() and mine.read_bytes() != data:
                raise ConfigError(
                    f"{mine} differs from the committed version ratchet would run"
                    f" — commit it (git commit -am ...) or restore it, then rerun"
                )


def results_path(study_root: Path, tag: str) -> Path:
    """A tag's results.tsv: one file per tag (``.ratchet/results-<tag>.tsv``), so a run of
    one tag never overwrites another's rows."""
    return Path(study_root) / STATE_DIR / f"results-{tag}.tsv"


def free_tag(tag: str, taken: list[str]) -> str:
    """The tag to suggest when ``tag`` can no longer be resumed (pure): ``main`` → ``main-2``,
    ``main-2`` → ``main-3``, past every tag in ``taken``, and still a valid tag."""
    match = re.fullmatch(r"(.+)-(\d+)", tag)
    base, number = (match.group(1), int(match.group(2))) if match else (tag, 1)
    while True:
        number += 1
        suffix = f"-{number}"
        name = base[: 64 - len(suffix)] + suffix
        if name not in taken:
            return name


def measured_config(study: Study, budget: float | None = None) -> dict[str, str]:
    """The keys of ratchet.toml that change what is measured, as ``"[section] key" → value``.

    Commands, budgets (a ``--budget`` override counts as ``[run] budget``), the
    metric, the evaluation's inputs and the protected globs. Everything else
    (proposer, decision, search, sandbox, the program) may change within a tag.
    """
    run, evaluate = study.run, study.evaluate
    keys: dict[str, object] = {
        "[run] command": run.command,
        "[run] budget": budget if budget is not None else run.budget,
        "[run] smoke": run.smoke,
        "[run] smoke_budget": run.smoke_budget,
        "[metric] name": study.metric.name,
        "[metric] goal": study.metric.goal,
        "[files] protected": sorted(study.protected),
        "[evaluate] command": evaluate.command if evaluate else None,
        "[evaluate] budget": evaluate.budget if evaluate else None,
        "[evaluate] inputs": evaluate.inputs if evaluate else None,
    }
    return {key: _shown(value) for key, value in keys.items()}


def _shown(value: object) -> str:
    """A pinned value as the refusal prints it (``10`` for 10.0, ``none`` for unset)."""
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def pin_changes(
    before: dict[str, str], now: dict[str, str], unpinned: tuple[str, ...] = (CONFIG_NAME,)
) -> list[str]:
    """What changed between two pin sets, one sentence fragment each (pure).

    Pins recorded before this rule (a whole-file hash of ratchet.toml and of the
    program, named in ``unpinned``) compare only what both sides have: a config key
    absent from old pins cannot be said to have changed.
    """
    changes = []
    for key in sorted(before.keys() | now.keys()):
        old, new = before.get(key), now.get(key)
        if old == new or key in unpinned:
            continue
        if key.startswith("["):
            if old is not None and new is not None:
                changes.append(f"{key} changed from {old} to {new}")
        elif old is None:
            changes.append(f"protected file {key} was added")
        elif new is None:
            changes.append(f"protected file {key} was removed")
        else:
            changes.append(f"protected file {key} changed")
    return changes


def worktree_path(state: Path, tag: str, index: int, workers: int) -> Path:
    """Where worker ``index`` builds its candidates: ``worktrees/<tag>`` for a lone worker
    (as ever), ``worktrees/<tag>/w<k>`` for each of several."""
    root = state / "worktrees" / tag
    return root if workers == 1 else root / f"w{index}"


def _switch_layout(repo: Repo, root: Path, workers: int) -> None:
    """Remove the other layout's worktrees when the number of workers changes between runs.

    One worker uses ``worktrees/<tag>`` itself as its worktree; several use
    ``worktrees/<tag>/w<k>``, which must not sit inside a worktree (a reset
    would clean them away). Worktrees hold nothing recorded: every experiment's
    code is a commit.
    """
    single = (root / ".git").is_file()
    if not root.exists() or single == (workers == 1):
        return
    stale = [root] if single else [p for p in root.iterdir() if (p / ".git").is_file()]
    for path in stale:
        if path == root:
            for child in root.iterdir():
                _remove_tree(child)
        else:
            _remove_tree(path)
    repo.prune_worktrees()


def _remove_tree(path: Path) -> None:
    """Delete a file or directory (best effort: a worktree that resists is replaced later)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def fresh_worktree(
    repo: Repo,
    path: Path,
    commit: str,
    observer: Observer,
    stuck: CleanupError | None = None,
) -> Worktree:
    """The worktree at ``path`` holding ``commit``; one that cannot be cleaned is replaced.

    What a candidate made undeletable (an immutable file, another user's file)
    is moved to ``.ratchet/abandoned/`` with a note saying why, git forgets
    the old worktree, and a new one is checked out in its place, so no
    leftover can block a tag. ``ratchet doctor`` reports what is waiting there.
    A worktree that cannot even be moved (its own directory made immutable)
    is left where it is, and a spare next to it (``<name>+1``, ...; no tag
    can be spelled so) is used instead, on this run and on every resume.
    """
    spares = [path, *(path.with_name(f"{path.name}+{n}") for n in range(1, SPARES + 1))]
    for where in spares:
        if stuck is None:
            try:
                return repo.worktree(where, commit)
            except CleanupError as exc:
                stuck = exc
        abandoned = path.parent.parent / ABANDONED_DIR
        try:
            moved = repo.abandon_worktree(where, abandoned)
        except CleanupError as exc:
            observer.message(f"warning: {stuck}; {exc}; trying a spare worktree")
            _note(abandoned / f"{where.name}{IN_PLACE}", f"{where}\n{stuck}; {exc}\n")
            stuck = None
            continue
        _note(moved.with_name(moved.name + ".reason"), f"{stuck}\n")
        observer.message(
            f"warning: {stuck}; moved it to {moved} and started a fresh worktree"
            " (`ratchet doctor` says how to delete it)"
        )
        return repo.worktree(where, commit)
    raise CleanupError(
        f"{path} and its {SPARES} spares next to it can neither be cleaned nor moved"
        f" — as root run `chattr -R -i -a {path.parent}` and delete them, then rerun"
    )


def _note(path: Path, text: str) -> None:
    """Why a worktree was left behind, for ``ratchet doctor`` (best effort: a note)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _prefixes(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _acquire(path: Path, tag: str) -> IO[str]:
    """One ``ratchet run`` per tag at a time; the kernel frees the lock if we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"tag {tag!r} is already being run (pid {holder})"
            " — wait for it to finish, stop it, or choose another --tag"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
    except OSError as exc:  # a full disk, typically: the ledger could not be written either
        with contextlib.suppress(OSError):  # closing retries the failed write
            handle.close()
        raise LedgerError(
            f"cannot write {path}: {exc.strerror or exc} — free some disk space and rerun"
        ) from None
    return handle


def lock_holder(study: Study, tag: str) -> int | None:
    """The pid of the live ``ratchet run`` holding ``tag``, if any (for ``status``)."""
    path = study.root / STATE_DIR / "locks" / f"{tag}.lock"
    if not path.exists():
        return None
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def island_branch(tag: str, island: int) -> str:
    """The islands policy's branch of island ``island``: ``ratchet-island/<tag>/<k>``."""
    return f"refs/heads/ratchet-island/{tag}/{island}"


def carry(repo: Repo, ref: str, commit: str, exp_id: int | None = None) -> str:
    """Where ``ref`` goes so that it carries ``commit`` and loses nothing it had.

    The branch rule for every policy: a kept commit that descends from the
    branch head is a fast-forward (always so under greedy); one that does not
    (tree builds on any node, islands restart or migrate) gets a merge commit
    whose parents are the old head and the kept commit and whose tree is the
    kept commit's. So the branch's tree is always the latest keep's (the
    incumbent, ``models.incumbent``) and no kept commit ever leaves its history.
    A ref that already contains ``commit`` stays where it is.
    """
    head = repo.rev(ref)
    if head is None or repo.is_ancestor(head, commit):
        return commit
    if repo.is_ancestor(commit, head):
        return head
    what = f"experiment #{exp_id}" if exp_id is not None else commit[:12]
    return repo.merge_commit(
        head, commit, f"ratchet: {what} is the new incumbent\n\nRatchet-Keep: {commit}\n"
    )


def _restore_refs(repo: Repo, tag: str, experiments: list[Experiment]) -> None:
    """Every experiment with code gets its ref, even if we died before writing it."""
    have = repo.refs(f"refs/ratchet/{tag}/exp/")
    missing = {
        f"refs/ratchet/{tag}/exp/{e.id}": e.commit
        for e in experiments
        if e.commit and f"refs/ratchet/{tag}/exp/{e.id}" not in have
    }
    repo.update_refs(missing)


def _restore_islands(
    repo: Repo, tag: str, experiments: list[Experiment], observer: Observer
) -> None:
    """Each island branch carries its island's latest keep, even if we died before moving it.

    A keep is recorded in the ledger before the refs move (``record_refs``), so a
    kill in between leaves ``ratchet-island/<tag>/<k>`` one keep behind; it moves
    the way that keep would have moved it (``carry``: forward only, never back).
    """
    latest: dict[int, tuple[int, str]] = {}  # island -> (experiment id, commit) of its last keep
    for e in experiments:
        if e.status == "keep" and e.island is not None and e.commit:
            latest[e.island] = (e.id, e.commit)  # the ledger is in id order: the last one wins
    updates = {}
    for island, (exp_id, commit) in sorted(latest.items()):
        ref = island_branch(tag, island)
        head = repo.rev(ref)
        if head is not None and repo.is_ancestor(commit, head):
            continue
        updates[ref] = carry(repo, ref, commit, exp_id)
        observer.message(
            f"moved ratchet-island/{tag}/{island} to island {island}'s incumbent"
            f" {commit[:7]} (experiment #{exp_id})"
        )
    if updates:
        repo.update_refs(updates)


def _reconcile(repo: Repo, ledger: Ledger, tag: str, observer: Observer) -> str:
    """Repair after a crash; return the commit the next experiment builds on."""
    stopped = ledger.mark_interrupted(tag)
    if stopped:
        ids = ", ".join(str(i) for i in stopped)
        observer.message(f"resuming tag {tag!r}: experiment {ids} was interrupted")
    repo.prune_worktrees()
    experiments = ledger.experiments(tag)
    _restore_refs(repo, tag, experiments)
    _restore_islands(repo, tag, experiments, observer)
    branch = f"refs/heads/ratchet/{tag}"
    current = repo.rev(branch)
    best = incumbent(experiments)
    if best is None or best.commit is None:
        # No measured baseline: nothing to keep on the branch, and the tag pins nothing
        # yet, so it starts from the user's HEAD (a failed baseline, fixed and committed).
        head = repo.head()
        if current != head:
            repo.update_ref(branch, head)
        return head
    if current is None or not repo.is_ancestor(best.commit, current):
        repo.update_ref(branch, carry(repo, branch, best.commit))
        if current is not None:
            observer.message(f"moved ratchet/{tag} to the ledger's incumbent {best.commit[:7]}")
    return best.commit
