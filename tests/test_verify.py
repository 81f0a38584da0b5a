"""Pre-run stages: lint (ruff) and dedupe, alone and inside the real loop; the smoke budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_TOML, git, make_repo

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import make_judge
from ratchet.models import Proposal
from ratchet.observer import Observer
from ratchet.proposers import ReplayProposer
from ratchet.run.verify import linter, verify
from ratchet.store.ledger import Ledger

needs_ruff = pytest.mark.skipif(linter() is None, reason="ruff is not installed")

SOLVE = "import math\n\n\ndef solve():\n    return math.pi\n\n\nprint('score:', solve())\n"
PY_TOML = FAST_TOML.replace('["value.txt"]', '["value.txt", "solve.py"]')


def _study(tmp_path: Path, toml: str = PY_TOML, solve: str = SOLVE) -> Path:
    files = {"ratchet.toml": toml, "program.md": "x", "value.txt": "score: 5\n", "check.sh": "x"}
    return make_repo(tmp_path / "s", {**files, "solve.py": solve})


def _run(root: Path, replay: Path, observer: Observer | None = None) -> list:
    study = load_study(root)
    run_study(study, ReplayProposer(replay), make_judge(study.decision), RunOptions(), observer)
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _solve(text: str, description: str = "edit solve.py") -> dict:
    return {"description": description, "edits": {"solve.py": text}}


# --- lint ------------------------------------------------------------------------------


@needs_ruff
def test_lint_rejects_an_undefined_name(tmp_path: Path) -> None:
    study = load_study(_study(tmp_path))
    typo = SOLVE.replace("return math.pi", "return mth.pi")
    rejection = verify(Proposal("typo", {"solve.py": typo}), study, {"solve.py": SOLVE})
    assert rejection is not None and rejection.stage == "lint"
    assert rejection.reason == "solve.py:5: F821 Undefined name `mth`"


@needs_ruff
def test_lint_rejects_a_redefinition_of_an_unused_name(tmp_path: Path) -> None:
    study = load_study(_study(tmp_path))
    twice = SOLVE.replace("import math\n", "import math\nimport math\n")
    rejection = verify(Proposal("twice", {"solve.py": twice}), study, {"solve.py": SOLVE})
    assert rejection is not None and "F811" in rejection.reason


@needs_ruff
def test_lint_only_counts_what_the_change_introduced(tmp_path: Path) -> None:
    legacy = SOLVE + "print(made_by_exec)\n"  # the study's own code already trips F821
    study = load_study(_study(tmp_path, solve=legacy))
    edited = "\n\n" + legacy.replace("math.pi", "math.e")  # lines move, the finding stays
    assert verify(Proposal("e", {"solve.py": edited}), study, {"solve.py": legacy}) is None
    worse = edited + "print(another_undefined)\n"
    rejection = verify(Proposal("w", {"solve.py": worse}), study, {"solve.py": legacy})
    assert rejection is not None and "another_undefined" in rejection.reason


def test_lint_is_skipped_without_ruff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ratchet.run.verify.linter", lambda: None)
    study = load_study(_study(tmp_path))
    typo = SOLVE.replace("return math.pi", "return mth.pi")
    assert verify(Proposal("typo", {"solve.py": typo}), study, {"solve.py": SOLVE}) is None


def test_the_loop_says_once_that_lint_is_off(
    tmp_path: Path, write_replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Notes(Observer):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    monkeypatch.setattr("ratchet.run.loop.linter", lambda: None)
    notes = Notes()
    _run(_study(tmp_path), write_replay([]), notes)
    assert sum("ruff is not installed" in line for line in notes.lines) == 1


@needs_ruff
def test_loop_records_a_lint_rejection_without_running_it(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path)
    typo = SOLVE.replace("return math.pi", "return mth.pi")
    exps = _run(root, write_replay([_solve(typo, "typo")]))
    rejected = exps[1]
    assert rejected.status == "rejected"
    assert rejected.reason == "lint: solve.py:5: F821 Undefined name `mth`"
    assert rejected.commit is None and rejected.duration_s == 0
    assert not (root / ".ratchet" / "logs" / str(rejected.id)).exists()


# --- dedupe ----------------------------------------------------------------------------


def test_a_repeated_change_is_rejected_with_the_earlier_id(fast_study: Path, write_replay) -> None:
    worse = {"description": "six", "edits": {"value.txt": "score: 6\n"}}
    again = {"description": "six again", "edits": {"value.txt": "score:   6  \n\n"}}
    exps = _run(fast_study, write_replay([worse, again]))
    assert [e.status for e in exps] == ["baseline", "discard", "rejected"]
    assert exps[2].reason == f"dedupe: same change as experiment #{exps[1].id} (discard)"
    assert exps[2].commit is None and exps[2].duration_s == 0  # cost no budget
    assert exps[2].meta["patch"] == exps[1].meta["patch"] == "--- value.txt\n-score:5\n+score:6"


def test_dedupe_spans_tags(fast_study: Path, write_replay) -> None:
    _run(fast_study, write_replay([{"description": "six", "edits": {"value.txt": "score: 6\n"}}]))
    study = load_study(fast_study)
    replay = write_replay([{"description": "six on b", "edits": {"value.txt": "score: 6\n"}}])
    run_study(study, ReplayProposer(replay), make_judge(study.decision), RunOptions(tag="b"))
    ledger = Ledger(fast_study / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()
    finally:
        ledger.close()
    assert exps[-1].tag == "b" and exps[-1].status == "rejected"
    assert exps[-1].reason == f"dedupe: same change as experiment #{exps[1].id} (discard)"


def test_a_kept_change_then_its_undo_is_not_a_duplicate(fast_study: Path, write_replay) -> None:
    exps = _run(
        fast_study,
        write_replay(
            [
                {"description": "three", "edits": {"value.txt": "score: 3\n"}},
                {"description": "back to five", "edits": {"value.txt": "score: 5\n"}},
            ]
        ),
    )
    assert [e.status for e in exps] == ["baseline", "keep", "discard"]


def test_the_same_program_from_another_parent_is_rejected(fast_study: Path, write_replay) -> None:
    six = {"description": "six", "edits": {"value.txt": "score: 6\n"}}
    three = {"description": "three", "edits": {"value.txt": "score: 3\n"}}
    six_on_three = {"description": "six from three", "edits": {"value.txt": "score: 6\n"}}
    exps = _run(fast_study, write_replay([six, three, six_on_three]))
    assert [e.status for e in exps] == ["baseline", "discard", "keep", "rejected"]
    assert exps[3].meta["patch"] != exps[1].meta["patch"]  # another parent, another patch
    assert exps[3].reason == f"dedupe: same program as experiment #{exps[1].id} (discard)"
    assert exps[3].commit is None and exps[3].duration_s == 0


def test_a_near_duplicate_of_a_rejected_change_runs(tmp_path: Path, write_replay) -> None:
    from ratchet.decide.dedupe import SIMILARITY, normalized_patch, similarity

    body = "".join(f"    total_{i} = math.sqrt(total)\n" for i in range(60))
    broken = f"import math\n\n\ndef solve(:\n    total = 2\n{body}    return total\n"
    broken += "\n\nprint('score:', solve())\n"
    fixed = broken.replace("def solve(:", "def solve():")
    patches = [normalized_patch({"solve.py": SOLVE}, {"solve.py": t}) for t in (broken, fixed)]
    assert similarity(*patches) >= SIMILARITY  # a near-duplicate by the patch measure
    exps = _run(_study(tmp_path), write_replay([_solve(broken, "broken"), _solve(fixed, "fixed")]))
    assert [e.status for e in exps][:2] == ["baseline", "rejected"]
    assert exps[1].reason.startswith("syntax")
    assert exps[2].description == "fixed" and exps[2].status == "discard"  # it ran


# --- smoke -----------------------------------------------------------------------------


def test_smoke_gets_a_tenth_of_the_run_budget_by_default(tmp_path: Path, write_replay) -> None:
    toml = FAST_TOML.replace("budget = 10", 'budget = 20\nsmoke = "sh smoke.sh"')
    files = {"ratchet.toml": toml, "program.md": "x", "value.txt": "score: 5\n", "check.sh": "x"}
    root = make_repo(tmp_path / "s", {**files, "smoke.sh": "true\n"})
    toml_files = toml.replace('["value.txt"]', '["value.txt", "smoke.sh"]')
    (root / "ratchet.toml").write_text(toml_files)
    git(root, "commit", "-qam", "smoke.sh is editable")
    slow = {"description": "slow smoke", "edits": {"smoke.sh": "sleep 30\n"}}
    exps = _run(root, write_replay([slow]))
    assert exps[1].status == "timeout"
    assert exps[1].reason == "smoke: smoke phase ran past its 2 s budget and was killed"
