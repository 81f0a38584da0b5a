"""Run the real ``ratchet`` command with one fault of Ratchet itself injected.

    python inject.py STEP N [--] RATCHET-ARGS...

kills this very process with SIGKILL (no cleanup, no ``finally``, exactly
like ``kill -9`` or the OOM killer) the N-th time the run reaches STEP:

- ``proposing``: inside the proposer's ``propose``, before it returns;
- ``after-commit``: the candidate's git commit is written, its ledger row not yet;
- ``after-finish``: the outcome row is written, the experiment's refs and the
  branch not yet moved;
- ``exporting``: halfway through writing results.tsv (the temporary file holds
  half of the text, the rename has not happened).

The fault is injected by wrapping one function of the package from outside,
so the product code has no test hooks. The steps sit between the writes an
experiment makes (git objects, ledger rows, refs, results.tsv), which is
where a crash could leave them disagreeing.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratchet import cli
from ratchet.proposers.replay import ReplayProposer
from ratchet.run.workspace import Workspace
from ratchet.store import ledger
from ratchet.store.ledger import Ledger

STEPS = ("proposing", "after-commit", "after-finish", "exporting")


def die() -> None:
    """SIGKILL ourselves: the one death no handler can soften."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counted(n: int) -> Callable[[], bool]:
    """A counter that answers True on its n-th call."""
    calls = [0]

    def hit() -> bool:
        calls[0] += 1
        return calls[0] == n

    return hit


def _die_before(owner: Any, name: str, n: int) -> None:
    original = getattr(owner, name)
    hit = _counted(n)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if hit():
            die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _die_after(owner: Any, name: str, n: int) -> None:
    original = getattr(owner, name)
    hit = _counted(n)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if hit():
            die()
        return result

    setattr(owner, name, wrapper)


def _die_while_exporting(n: int) -> None:
    """Write half of results.tsv into the temporary file the real writer uses, then die."""
    original = ledger.write_atomically
    hit = _counted(n)

    def wrapper(path: Path, text: str) -> None:
        if not hit():
            original(path, text)
            return
        fd, _tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.write(fd, text[: len(text) // 2].encode())
        die()

    ledger.write_atomically = wrapper


def inject(step: str, n: int) -> None:
    if step == "proposing":
        _die_before(ReplayProposer, "propose", n)
    elif step == "after-commit":
        _die_after(Workspace, "commit", n)
    elif step == "after-finish":
        _die_after(Ledger, "finish", n)
    elif step == "exporting":
        _die_while_exporting(n)
    else:
        raise SystemExit(f"unknown step {step!r}: use one of {', '.join(STEPS)}")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[1].isdigit():
        raise SystemExit("usage: inject.py STEP N [--] RATCHET-ARGS...")
    step, n, rest = argv[0], int(argv[1]), argv[2:]
    inject(step, n)
    return cli.main(rest[1:] if rest[:1] == ["--"] else rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
