"""The human's hand on a study: notes to the proposer, and voiding a keep.

Both are appended records (the ledger stays append-only) written while a
``ratchet run`` may be running: SQLite's WAL lets this process write a small
row next to the run's own writes, and the loop reads notes and voids afresh
before every proposal. Stop, pause and resume are in ``control``.

Invalidating a keep is the one place where ``ratchet/<tag>`` may move
backwards: to the last valid keep (``models.incumbent`` skips voided ones).
The voided commit stays reachable by its experiment ref.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..git.repo import Repo
from ..models import KEPT, Experiment, Note, incumbent
from ..store.journal import write_journal
from ..store.ledger import Ledger
from ..study import Study
from .workspace import STATE_DIR, open_ledger

__all__ = ["add_note", "invalidate"]


def add_note(study: Study, tag: str, text: str) -> Note:
    """Record a steering note for ``tag``; the proposer sees it from its next prompt."""
    text = text.strip()
    if not text:
        raise ConfigError(
            "the note is empty — say what the proposer should know, e.g."
            ' ratchet note "try a smaller batch first"'
        )
    Repo.discover(study.root).exclude(f"{STATE_DIR}/")  # a note before any run makes .ratchet/
    ledger = open_ledger(study)
    try:
        note = ledger.add_note(tag, text)
        _journal(study, ledger)
    finally:
        ledger.close()
    return note


def invalidate(study: Study, exp_id: int, reason: str) -> tuple[Experiment, Experiment | None]:
    """Void the keep ``exp_id``; return it and the tag's incumbent now (the branch moved to it)."""
    reason = reason.strip()
    if not reason:
        raise ConfigError(
            "--reason is empty — say why the keep is wrong, e.g."
            ' --reason "the metric read a leaked test set"'
        )
    ledger = open_ledger(study)
    try:
        exp = next((e for e in ledger.experiments() if e.id == exp_id), None)
        if exp is None:
            raise ConfigError(
                f"no experiment #{exp_id} in {study.root} — see `ratchet log` for ids"
            )
        if exp.status not in KEPT or exp.status == "baseline":
            raise ConfigError(
                f"#{exp_id} is {exp.status}, not a keep — only a kept experiment can be invalidated"
            )
        if exp.void is not None:
            raise ConfigError(f"#{exp_id} is already void ({exp.void})")
        repo = Repo.discover(study.root)
        ledger.void(exp_id, reason)
        best = incumbent(ledger.experiments(exp.tag))
        if best is not None and best.commit:
            repo.update_ref(f"refs/heads/ratchet/{exp.tag}", best.commit)
        _journal(study, ledger)
        return ledger.get(exp_id), best
    finally:
        ledger.close()


def _journal(study: Study, ledger: Ledger) -> None:
    """journal.md again, so the note or the void shows there at once."""
    write_journal(
        study.root / STATE_DIR / "journal.md",
        ledger.experiments(),
        metric_name=study.metric.name,
        goal=study.metric.goal,
        title=study.name,
        notes=ledger.notes(),
    )
