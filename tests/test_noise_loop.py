"""The noise-aware loop end to end: samples, re-measurements, pruning, confirmation, memory.

The studies are real git repositories whose run command is a small Python
script: it reads the true value from ``value.txt`` (the editable file) and
adds a fixed noise chosen by ``RATCHET_SEED``, so every run is reproducible
and the noise is real to the judge.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import git, make_repo, ratchet

from ratchet import RunOptions, load_study, run_study
from ratchet.judge import make_judge
from ratchet.ledger import Ledger
from ratchet.memory import CONFIRM_METRIC, CONFIRMED
from ratchet.models import Context, Proposal
from ratchet.proposers import ReplayProposer

NOISY_TOML = """\
[study]
name = "noisy"

[files]
editable = ["value.txt"]
protected = ["run.py", "confirm.py"]

[run]
command = "python run.py"
budget = 20
grace = 1

[metric]
name = "score"
goal = "minimize"

[decision]
rule = "{rule}"
remeasure_every = {every}

[proposer]
kind = "replay"
"""

# seed 0, 1, 2, ... → 0, +0.3, -0.3, +0.2, -0.2: mean 0, std 0.3 over the first three
RUN_PY = """\
import os
NOISE = [0.0, 0.3, -0.3, 0.2, -0.2, 0.1, -0.1]
SCALE = {scale}
value = float(open("value.txt").read())
seed = int(os.environ["RATCHET_SEED"])
print("score:", value + SCALE * NOISE[seed % len(NOISE)])
"""

# Progress lines on the way: the score falls from 2x to 1x the value over ten steps.
PROGRESS_PY = """\
import json, time
value = float(open("value.txt").read())
for step in range(1, 11):
    print(json.dumps({"progress": step / 10, "score": value * (2 - step / 10)}), flush=True)
    time.sleep(0.2)
print("score:", value)
"""

# The confirm command sees what the run cannot: values under 2 are overfit.
CONFIRM_PY = """\
value = float(open("value.txt").read())
print("score:", value if value >= 2 else 10 - value)
"""


def _study(
    tmp_path: Path,
    *,
    scale: float = 1.0,
    every: int = 0,
    rule: str = "noise-aware",
    run_py: str | None = None,
    extra: str = "",
) -> Path:
    toml = NOISY_TOML.format(every=every, rule=rule) + extra
    return make_repo(
        tmp_path / "s",
        {
            "ratchet.toml": toml,
            "program.md": "Lower the score.\n",
            "value.txt": "5.0\n",
            "run.py": run_py or RUN_PY.format(scale=scale),
            "confirm.py": CONFIRM_PY,
        },
    )


def _value(v: float, description: str = "") -> dict:
    return {"description": description or f"value {v}", "edits": {"value.txt": f"{v}\n"}}


def _ledger(root: Path) -> list:
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _run(root: Path, replay: Path, **options: object) -> list:
    study = load_study(root)
    run_study(study, ReplayProposer(replay), make_judge(study.decision), RunOptions(**options))
    return _ledger(root)


# --- samples ---------------------------------------------------------------------------


def test_noisy_baseline_takes_three_samples(tmp_path: Path, write_replay) -> None:
    exps = _run(_study(tmp_path), write_replay([]))
    assert exps[0].status == "baseline"
    assert exps[0].samples == [5.0, 5.3, 4.7] and exps[0].metric == 5.0
    assert "3 samples" in exps[0].reason


def test_deterministic_baseline_stops_at_two_equal_samples(tmp_path: Path, write_replay) -> None:
    exps = _run(_study(tmp_path, scale=0.0), write_replay([]))
    assert exps[0].samples == [5.0, 5.0]


def test_strict_rule_measures_once(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, rule="strict", every=3)
    exps = _run(root, write_replay([_value(6), _value(7), _value(8), _value(9)]))
    assert exps[0].samples == [5.0]
    assert all(len(e.samples) == 1 for e in exps)
    assert "remeasure" not in [e.status for e in exps]  # strict never re-measures


def test_noise_sized_change_is_not_kept_and_a_clear_one_is(tmp_path: Path, write_replay) -> None:
    everything = _run(_study(tmp_path), write_replay([_value(4.99, "tiny"), _value(3.0, "clear")]))
    exps = [e for e in everything if e.status != "remeasure"]
    assert [e.status for e in exps] == ["baseline", "discard", "keep"]
    assert len(exps[1].samples) > 1  # the judge asked for more before saying no
    # ...and topped up the incumbent meanwhile, so both sides are measured about as well
    top_ups = [e for e in everything if e.status == "remeasure"]
    assert top_ups and all(e.commit == exps[0].commit for e in top_ups)
    assert len(exps[0].samples) + len(top_ups) >= len(exps[1].samples)
    assert git(tmp_path / "s", "show", "ratchet/main:value.txt") == "3.0"


# --- re-measurement --------------------------------------------------------------------


def test_incumbent_is_remeasured_every_n_experiments(tmp_path: Path, write_replay) -> None:
    replay = write_replay([_value(v) for v in (9, 8, 7, 6.5, 6)])
    exps = _run(_study(tmp_path, every=2), replay)
    assert [e.status for e in exps] == [
        "baseline", "discard", "discard", "remeasure", "discard", "discard", "remeasure",
        "discard",
    ]  # fmt: skip
    base = exps[0]
    for again in (exps[3], exps[6]):
        assert again.commit == again.parent == base.commit
        assert again.description == f"re-measure incumbent #{base.id}"
        assert len(again.samples) == 1 and again.metric is not None
    # new seeds: the baseline used 0-2, the re-measurements 3 and 4 (noise +0.2, -0.2)
    assert [exps[3].metric, exps[6].metric] == [5.2, 4.8]
    # the branch and the incumbent are still the baseline
    assert git(tmp_path / "s", "rev-parse", "ratchet/main") == base.commit
    assert git(tmp_path / "s", "rev-parse", f"refs/ratchet/main/exp/{exps[3].id}") == base.commit


def test_remeasure_never_runs_for_a_deterministic_study(tmp_path: Path, write_replay) -> None:
    exps = _run(_study(tmp_path, scale=0.0, every=1), write_replay([_value(6), _value(7)]))
    assert [e.status for e in exps] == ["baseline", "discard", "discard"]


def test_a_ledger_from_before_remeasure_can_record_one(tmp_path: Path, write_replay) -> None:
    from ratchet import ledger as ledger_module

    path = tmp_path / "old.sqlite"
    old = ledger_module.SCHEMA.replace(", 'remeasure', 'unconfirmed'", "")
    db = sqlite3.connect(path)
    db.executescript(old + f"PRAGMA user_version = {ledger_module.SCHEMA_VERSION};")
    db.execute("INSERT INTO experiments VALUES (1,'main',NULL,'c','b','','{}',0,0,0,'',0)")
    db.execute("INSERT INTO outcomes VALUES (1,'baseline',5.0,'',1.0,0)")
    db.commit()
    db.close()
    ledger = Ledger(path)
    try:
        exp_id = ledger.start(tag="main", parent="c", commit="c", description="re-measure")
        ledger.add_sample(exp_id, seed=3, value=5.2, status="ok")
        ledger.finish(exp_id, status="remeasure", metric=5.2)
        assert [(e.status, e.metric) for e in ledger.experiments()] == [
            ("baseline", 5.0),
            ("remeasure", 5.2),
        ]
        db = sqlite3.connect(path)
        try:
            db.execute("DELETE FROM outcomes")
            raise AssertionError("the rebuilt table must stay append-only")
        except sqlite3.DatabaseError as exc:
            assert "append-only" in str(exc)
        finally:
            db.close()
    finally:
        ledger.close()


# --- pruning ---------------------------------------------------------------------------


def test_clearly_worse_candidate_is_pruned(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, run_py=PROGRESS_PY)
    exps = _run(root, write_replay([_value(50, "much worse"), _value(4, "better")]))
    assert [e.status for e in exps] == ["baseline", "pruned", "keep"]
    pruned = exps[1]
    assert pruned.metric is None and pruned.reason
    log = (Path(pruned.log_dir) / "run.log").read_text()
    assert '"progress": 1.0' not in log  # stopped before the end
    assert "score: 50" not in log
    status = ratchet("status", str(root))
    assert "by stopping 1 run early" in status.stdout


def test_pruning_can_be_switched_off(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, run_py=PROGRESS_PY, extra="\n[prune]\nenabled = false\n")
    exps = _run(root, write_replay([_value(50, "much worse")]))
    assert [e.status for e in exps] == ["baseline", "discard"]


# --- confirm ---------------------------------------------------------------------------

CONFIRM = '\n[confirm]\ncommand = "python confirm.py"\nbudget = 20\ninputs = ["value.txt"]\n'


def test_confirm_both_ways_marks_without_reverting(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, scale=0.0, extra=CONFIRM)
    exps = _run(root, write_replay([_value(3, "honest"), _value(1, "overfit")]))
    base, honest, overfit = exps
    assert base.extras[CONFIRM_METRIC] == 5.0 and base.extras[CONFIRMED] == 1.0
    assert honest.status == "keep" and honest.extras[CONFIRMED] == 1.0
    assert overfit.status == "keep" and overfit.extras[CONFIRMED] == 0.0
    assert overfit.extras[CONFIRM_METRIC] == 9.0 and "not confirmed" in overfit.reason
    assert 9.0 not in overfit.samples  # the confirm value never joins the samples
    assert git(root, "rev-parse", "ratchet/main") == overfit.commit  # revert = false: kept
    log = ratchet("log", str(root))
    assert log.returncode == 0, log.stderr
    cells = [[c.strip() for c in line.split("│")] for line in log.stdout.splitlines()[2:]]
    rows = {row[0]: row for row in cells if row[0]}
    assert rows[str(honest.id)][4] == "yes" and rows[str(overfit.id)][4] == "NO"
    listed = json.loads(ratchet("log", str(root), "--json").stdout)
    assert [r["confirmed"] for r in listed] == [True, True, False]


def test_unconfirmed_keep_is_reverted_when_asked(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, scale=0.0, extra=CONFIRM + "revert = true\n")
    exps = _run(root, write_replay([_value(1, "overfit"), _value(4, "next")]))
    base, overfit, nxt = exps
    assert overfit.status == "unconfirmed" and "not confirmed" in overfit.reason
    assert nxt.status == "keep" and nxt.parent == base.commit  # built on the baseline
    assert git(root, "rev-parse", "ratchet/main") == nxt.commit
    assert git(root, "rev-parse", f"refs/ratchet/main/exp/{overfit.id}") == overfit.commit


# --- memory and status -----------------------------------------------------------------


class Recording:
    """An in-process proposer that keeps every context it was shown."""

    name = "recording"

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.contexts: list[Context] = []

    def propose(self, context: Context) -> Proposal:
        self.contexts.append(context)
        v = self.values[len(self.contexts) - 1]
        return Proposal(f"value {v}", {"value.txt": f"{v}\n"}, rationale="lower is better")


def test_journal_is_written_and_shown_to_the_next_proposal(tmp_path: Path) -> None:
    root = _study(tmp_path, scale=0.0)
    study = load_study(root)
    proposer = Recording([6.0, 4.0, 3.0])
    run_study(study, proposer, make_judge(study.decision), RunOptions(max_experiments=3))
    first, second, third = proposer.contexts
    assert first.journal == "Kept, newest first:\n- #1 baseline: score 5"
    assert "value 6.0 made score worse by 1 (discard)" in second.journal
    assert third.journal.index("made score better") < third.journal.index("made score worse")
    journal = (root / ".ratchet" / "journal.md").read_text()
    assert journal.startswith("# Journal — noisy")
    assert "- hypothesis: value 6.0 — lower is better" in journal
    assert journal.count("\n## #") == 4


def test_status_reports_budget_lost_and_saved(tmp_path: Path, write_replay) -> None:
    root = _study(tmp_path, scale=0.0)
    bad = {"description": "bad", "edits": {"value.txt": "oops\n"}}
    replay = write_replay([_value(6), _value(6, "six again"), bad])
    done = ratchet("run", str(root), "--proposer", "replay", "--replay", str(replay))
    assert done.returncode == 0, done.stderr
    status = ratchet("status", str(root))
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    budget = next(line for line in lines if line.startswith("budget "))
    assert "crashed, timed out or were pruned" in budget
    saved = next(line for line in lines if line.startswith("saved "))
    assert "by rejecting 1 proposal before running" in saved and "estimates" in saved
