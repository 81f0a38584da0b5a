"""``ratchet try``: the agent-driven workflow, with its rules enforced by the tool.

An external coding agent (or a person) edits the study's editable files in
their own checkout and calls ``ratchet try -m "what changed"``. Ratchet then

1. refuses, before anything runs or is recorded, when a protected file of the
   checkout differs from its pin (the pins are taken from HEAD at the first
   ``try`` of a tag, like a run's), naming the file;
2. measures the baseline first when the tag has none: HEAD as committed;
3. builds the candidate as a commit on HEAD holding the checkout's editable
   files (everything else as committed, protected files as pinned), in the
   tag's worktree, and measures it exactly as ``ratchet run`` would: same
   verification, smoke, samples and judge, same ledger row, same refs;
4. on ``keep`` moves the checkout's HEAD (the current branch, or a detached
   HEAD) to that very commit, so ``git log`` shows the message and the
   ledger's commit is the branch's; on anything else restores the editable
   files it measured to HEAD (a file changed again meanwhile is left alone).
   A discarded change is never lost: its commit stays under
   ``refs/ratchet/<tag>/exp/<id>`` (``ratchet show ID --diff``).

The command prints one line, ``format_line``; statuses other than keep and
discard (crash, timeout, pruned, rejected) print as ``crash`` followed by the
reason, since for the agent they all mean "this did not work".
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..decide.judge import Judge
from ..decide.sampling import judged_reference, remeasure_due
from ..errors import ConfigError, GitError
from ..execute.phases import Executor
from ..git.repo import Repo
from ..models import Experiment, Proposal, incumbent
from ..observer import Observer
from ..proposers.agent import AGENT_ENV
from ..safetext import printable
from ..study import Study
from .trial import Bench, baseline, remeasure_incumbent, run_proposal
from .workspace import STATE_DIR, Workspace

__all__ = [
    "AGENTS_FILE",
    "TryResult",
    "try_working_tree",
    "format_line",
    "agent_instructions",
]

AGENTS_FILE = "AGENTS.md"

# What a ledger status reads as on the one line; anything else did not work: "crash".
_WORD = {"keep": "keep", "discard": "discard", "unconfirmed": "discard", "baseline": "baseline"}


@dataclass(frozen=True)
class TryResult:
    """What one ``ratchet try`` did: the experiment, the best value after it, the checkout."""

    experiment: Experiment
    best: float | None
    committed: str | None = None  # the commit HEAD moved to (keep)
    restored: list[str] = field(default_factory=list)  # study paths restored to HEAD
    left: list[str] = field(default_factory=list)  # changed again while measured: untouched

    @property
    def status(self) -> str:
        """keep, discard or baseline; every outcome without a measured metric reads ``crash``."""
        return _WORD.get(self.experiment.status, "crash")


def format_line(result: TryResult, metric_name: str) -> str:
    """``keep|discard|crash <metric>=<value> (best <value>)``; a crash adds why and where."""
    exp = result.experiment
    line = f"{result.status} {metric_name}={_value(exp.metric)} (best {_value(result.best)})"
    if exp.status not in _WORD or exp.status == "unconfirmed":
        reason = printable((exp.reason.splitlines() or [""])[0])[:300]
        line += f" — {exp.status}: {reason} (see `ratchet show {exp.id} --log`)"
    return line


def _value(metric: float | None) -> str:
    return "-" if metric is None else f"{metric:.6g}"


def try_working_tree(
    study: Study,
    message: str,
    judge: Judge,
    *,
    tag: str = "main",
    observer: Observer | None = None,
    environ: Mapping[str, str] | None = None,
) -> TryResult:
    """Measure the checkout's editable files against the tag's incumbent; keep or restore."""
    _refuse_context(study, os.environ if environ is None else environ)
    if not message.strip():
        raise ConfigError('-m must say what changed, e.g. ratchet try -m "halve the lr"')
    observer = observer or Observer()
    # Silent: the workspace's note "runs the committed version" is about `ratchet run`.
    ws = Workspace.open(study, tag, Observer())
    try:
        if ws.repo.current_branch() == f"ratchet/{tag}":
            raise ConfigError(
                f"the checkout is on ratchet/{tag}, the branch ratchet moves itself"
                f" — switch to your own branch (git switch -c my-study) or pass another --tag"
            )
        return _try(ws, message.strip(), judge, observer)
    except KeyboardInterrupt:
        ws.interrupted("stopped by Ctrl-C")
        raise
    finally:
        ws.export()
        ws.close()


def _refuse_context(study: Study, environ: Mapping[str, str]) -> None:
    if environ.get(AGENT_ENV) == "agent":
        raise ConfigError(
            "ratchet try is not for the agent proposer: under `ratchet run --proposer agent`"
            " Ratchet runs and scores your change itself — make the change and exit"
        )
    if STATE_DIR in study.root.parts:
        raise ConfigError(
            f"{study.root} is inside a Ratchet worktree — run ratchet try in your own checkout"
        )
    _refuse_tampering(study)


def _refuse_tampering(study: Study) -> None:
    """A protected file of the checkout that differs from HEAD: refuse, name it, run nothing.

    Checked before the workspace opens, so the sentence is about ``try``. A
    change to a protected file that was *committed* after the tag's pins were
    taken is refused when the workspace opens (it compares the checkout with
    the pins), and again by ``_refuse_unpinned``.
    """
    repo = Repo.discover(study.root)
    prefix = study.root.relative_to(repo.root.resolve()).as_posix()
    prefix = "" if prefix in ("", ".") else f"{prefix}/"
    head = repo.head()
    for name in study.protected_files():
        mine = (study.root / name).read_bytes()
        if mine != repo.show_file(head, f"{prefix}{name}"):
            raise ConfigError(_tampered(study, name, "differs from HEAD"))


def _tampered(study: Study, name: str, how: str) -> str:
    return (
        f"{study.root / name} is protected and {how}, so ratchet try measured nothing"
        f" — restore it (git checkout HEAD -- {name}); only the editable files"
        f" ({', '.join(study.editable)}) may change"
    )


def _try(ws: Workspace, message: str, judge: Judge, observer: Observer) -> TryResult:
    study = ws.study
    _refuse_unpinned(ws)
    head = ws.repo.head()
    files = ws.checkout(head)
    edits = _working_edits(ws, files)
    executor = Executor(study, pinned=ws.pinned, observer=observer)
    bench = Bench(ws, executor, judge, observer, proposer="try")
    bench.refresh()
    best = incumbent(bench.mine())
    if best is None:
        ws.repo.update_ref(ws.branch_ref, head)
        best = baseline(bench)
        if not edits:
            return TryResult(best, _best(ws))
    elif not edits:
        raise ConfigError(
            f"nothing to try: no editable file ({', '.join(study.editable)}) differs from HEAD"
            " — edit one, then rerun ratchet try"
        )
    elif remeasure_due(bench.mine(), study, judge):
        remeasure_incumbent(bench)
    ws.checkout(head)  # nothing an earlier measurement wrote may reach the candidate
    proposal = Proposal(description=message, edits=edits, meta={"mode": "try"})
    exp = run_proposal(bench, best, head, files, proposal)
    if exp.status == "keep":
        _advance(ws, head, exp.commit or "", message, list(edits))
        return TryResult(exp, _best(ws), committed=exp.commit)
    restored, left = _restore(ws, files, edits)
    return TryResult(exp, _best(ws), restored=restored, left=left)


def _best(ws: Workspace) -> float | None:
    """What the next candidate is judged against: every sample of the incumbent, not its first."""
    history = ws.experiments()
    best = incumbent(history)
    return judged_reference(history, best) if best else None


def _refuse_unpinned(ws: Workspace) -> None:
    """Pinned now: a protected file the checkout lacks, or one not matching the tag's pin."""
    pins = ws.ledger.pins(ws.tag) or {}
    for name in ws.measured_files:
        mine = ws.study.root / name
        if not mine.is_file():
            raise ConfigError(_tampered(ws.study, name, "is missing"))
        if pins.get(name, "") != hashlib.sha256(mine.read_bytes()).hexdigest():
            raise ConfigError(_tampered(ws.study, name, f"differs from tag {ws.tag!r}'s pin"))


def _working_edits(ws: Workspace, files: Mapping[str, str]) -> dict[str, str]:
    """The checkout's editable files that differ from HEAD (path → full text)."""
    study = ws.study
    gone = [name for name in files if not (study.root / name).exists()]
    if gone:
        raise ConfigError(
            f"{study.root / gone[0]} was deleted; ratchet try measures changed files, not"
            f" deletions — restore it (git checkout HEAD -- {gone[0]}) or empty it instead"
        )
    edits: dict[str, str] = {}
    for name in study.editable_files():
        mine = study.root / name
        if mine.is_symlink():
            raise ConfigError(f"{mine} is a symlink — ratchet try measures plain files only")
        data = mine.read_bytes()
        at_head = ws.study_dir / name
        if name in files and data == at_head.read_bytes():
            continue
        try:
            edits[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{mine} is not UTF-8 text — ratchet try measures text files"
            ) from None
    return edits


# --- the user's checkout: the two writes ratchet try makes there ------------------------


def _repo_paths(ws: Workspace, names: list[str]) -> list[str]:
    prefix = "" if ws.study_rel in ("", ".") else f"{ws.study_rel}/"
    return [f"{prefix}{name}" for name in names]


def _advance(ws: Workspace, head: str, commit: str, message: str, names: list[str]) -> None:
    """Move HEAD (its branch) to the kept commit, whose parent it is; index follows the files.

    ``update-ref`` with the old value refuses if HEAD moved meanwhile, so a
    commit made during the measurement is never overwritten.
    """
    try:
        ws.repo.advance_head(commit, head, f"ratchet try: {message[:80]}")
    except GitError:
        raise GitError(
            f"the change was kept as {commit[:12]} (on ratchet/{ws.tag}), but HEAD moved while"
            f" it was measured, so it was not committed here — run `git merge {commit[:12]}`"
        ) from None
    ws.repo.unstage(_repo_paths(ws, names))


def _restore(
    ws: Workspace, files: Mapping[str, str], edits: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Put the measured editable files back to HEAD; leave any changed since the measurement."""
    same = [
        name
        for name, text in edits.items()
        if (ws.study.root / name).is_file()
        and (ws.study.root / name).read_bytes() == text.encode("utf-8")
    ]
    left = sorted(set(edits) - set(same))
    tracked = [name for name in same if name in files]
    new = [name for name in same if name not in files]
    if tracked:
        paths = _repo_paths(ws, tracked)
        ws.repo.restore_from_head(paths)
    if new:
        ws.repo.unstage(_repo_paths(ws, new))
        for name in new:
            (ws.study.root / name).unlink()
    return sorted(same), left


# --- AGENTS.md -------------------------------------------------------------------------


def agent_instructions(study: Study) -> str:
    """AGENTS.md for a study: the autoresearch loop, with ``ratchet try`` enforcing its rules."""
    editable = ", ".join(f"`{p}`" for p in study.editable)
    protected = ", ".join(
        f"`{p}`" for p in sorted({*study.protected, "ratchet.toml", study.program})
    )
    better = "lower" if study.metric.goal == "minimize" else "higher"
    name = study.metric.name
    return f"""\
# Instructions for coding agents

This directory is a Ratchet study, `{study.name}`. Your job: make `{name}` {better}
by changing the editable files, one idea at a time. Ratchet measures every
change for you and keeps only what is really better. Read `{study.program}`
first: it is the research program.

## Files

- Editable, yours to change: {editable}
- Protected, never edit: {protected}.
  While one of them differs from its committed version, `ratchet try`
  refuses to measure anything.
- Everything else is context: read it, do not change it.

## The loop

Repeat, without stopping:

1. Make one focused change to the editable files.
2. Run `ratchet try -m "<one line: what you changed and why>"`.
3. Read the one line it prints:
   - `keep {name}=<value> (best <value>)`: better. Ratchet committed your change
     to the current branch; build on it.
   - `discard {name}=<value> (best <value>)`: not better. Ratchet restored the
     editable files to the last kept version.
   - `crash {name}=- (best <value>) — <why>`: it failed; the files were restored.
     `ratchet show ID --log` prints the output. Fix a trivial mistake and try
     again, or move on to the next idea.
4. Go back to 1 with the next idea. Never stop to ask whether to continue:
   the human may be away, and expects you to keep experimenting until they
   stop you. When you run out of ideas, read `ratchet log` and the code
   again, combine near-misses, try more radical changes.

## Rules, enforced by `ratchet try`

- Never edit a protected file, never change how `{name}` is measured.
- Do not run the experiment yourself to score it, and do not commit, reset
  or revert by hand: `ratchet try` measures the change in a clean copy under
  the fixed budget, commits what it keeps and restores what it discards.
- One change per try, so every result says what helped.
- `ratchet log` lists every experiment so far; `ratchet status` shows the best.

If you were started by `ratchet run --proposer agent`, this loop is not
yours: make the single change your prompt asks for, and stop.
"""
