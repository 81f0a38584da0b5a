"""The loop's seams: an injected executor and policy, experiment ids on events, provenance."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.execute.phases import Candidate, Measurement
from ratchet.models import Experiment
from ratchet.observer import Observer
from ratchet.policies import Choice
from ratchet.proposers import ReplayProposer
from ratchet.store.ledger import Ledger


class ScoreFromCommit:
    """An executor without processes: the metric is ``value.txt`` at the candidate's commit."""

    budget = 7.0

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.seen: list[Candidate] = []

    def smoke(self, candidate: Candidate) -> Measurement | None:
        return None

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        self.seen.append(candidate)
        text = subprocess.run(
            ["git", "show", f"{candidate.commit}:value.txt"],
            cwd=self.repo, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return Measurement("ok", metric=float(text.split(":")[1]), duration_s=0.0)

    def confirm(self, candidate: Candidate) -> Measurement:
        raise AssertionError("the study has no [confirm]")


class AlwaysTheBaseline:
    """A policy that never builds on a keep: every change starts from the baseline."""

    name = "always-the-baseline"

    def choose(self, history: list[Experiment], rng: object, busy: object = ()) -> Choice | None:
        base = next((e for e in history if e.status == "baseline"), None)
        return None if base is None else Choice(base, base, reason="the baseline")


class Events(Observer):
    def __init__(self) -> None:
        self.started: list[int] = []
        self.phases: list[tuple[int, str]] = []
        self.lines: set[int] = set()

    def experiment_started(self, exp_id: int, description: str) -> None:
        self.started.append(exp_id)

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.phases.append((exp_id, phase))

    def output_line(self, exp_id: int, line: str) -> None:
        self.lines.add(exp_id)


def _ledger(root: Path) -> list[Experiment]:
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _values(*scores: int) -> list[dict]:
    return [{"description": f"{s}", "edits": {"value.txt": f"score: {s}\n"}} for s in scores]


def test_an_injected_executor_and_policy_drive_the_loop(fast_study: Path, write_replay) -> None:
    executor = ScoreFromCommit(fast_study)
    summary = run_study(
        load_study(fast_study),
        ReplayProposer(write_replay(_values(3, 4, 2))),
        StrictJudge(),
        RunOptions(),
        executor=executor,
        policy=AlwaysTheBaseline(),
    )
    exps = _ledger(fast_study)
    assert [(e.status, e.metric) for e in exps] == [
        ("baseline", 5.0), ("keep", 3.0), ("keep", 4.0), ("keep", 2.0),
    ]  # fmt: skip
    # each change was built on (and judged against) the baseline the policy picked
    assert {e.parent for e in exps[1:]} == {exps[0].commit}
    assert {(e.parent_id, e.node_kind) for e in exps[1:]} == {(exps[0].id, "improve")}
    assert summary.best == 2.0 and summary.kept == 3
    # the executor was told each candidate's commit and experiment, matching the ledger
    assert [(c.exp_id, c.commit) for c in executor.seen] == [(e.id, e.commit) for e in exps]
    assert {e.budget_s for e in exps} == {7.0}


def test_events_carry_the_experiment_id_and_rows_say_where_they_ran(
    fast_study: Path, write_replay
) -> None:
    events = Events()
    replay = write_replay(_values(3) + [{"description": "protected", "edits": {"check.sh": "x"}}])
    run_study(load_study(fast_study), ReplayProposer(replay), StrictJudge(), RunOptions(), events)
    base, kept, rejected = _ledger(fast_study)
    assert events.started == [base.id, kept.id]  # a rejected proposal never starts
    assert events.phases == [(base.id, "run"), (kept.id, "run")]
    assert events.lines == {base.id, kept.id}
    assert (base.proposer, kept.proposer, rejected.proposer) == ("", "replay", "replay")
    assert {(e.worker, e.host, e.budget_s) for e in (base, kept, rejected)} == {
        ("w0", socket.gethostname(), 10.0)
    }


NOISY_TOML = """\
[study]
name = "noisy"
[files]
editable = ["value.txt"]
[run]
command = "true"
budget = 5
[metric]
name = "score"
goal = "minimize"
[decision]
rule = "noise-aware"
remeasure_every = 2
[proposer]
kind = "replay"
"""
NOISE = [0.0, 0.3, -0.3, 0.2, -0.2, 0.1, -0.1, 0.25, -0.25]


class NoisyFromCommit(ScoreFromCommit):
    """``value.txt`` at the candidate's commit, plus a noise fixed by the seed."""

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        m = super().measure(candidate)
        noisy = (m.metric or 0.0) + NOISE[candidate.seed % len(NOISE)]
        return Measurement("ok", metric=noisy, duration_s=0.0)


def test_top_ups_and_remeasures_keep_the_history_in_ledger_order(tmp_path: Path) -> None:
    from conftest import make_repo

    from ratchet.decide.judge import make_judge
    from ratchet.store.journal import journal_markdown

    root = make_repo(tmp_path / "s", {"ratchet.toml": NOISY_TOML, "program.md": "x",
                                      "value.txt": "score: 5\n"})  # fmt: skip
    replay = tmp_path / "r.jsonl"
    import json

    replay.write_text("".join(json.dumps(p) + "\n" for p in _values(4.8, 5.1, 4.9, 3)))
    study = load_study(root)
    run_study(study, ReplayProposer(replay), make_judge(study.decision), RunOptions(),
              executor=NoisyFromCommit(root))  # fmt: skip
    exps = _ledger(root)
    statuses = [e.status for e in exps]
    assert statuses[0] == "baseline" and "remeasure" in statuses  # topped up or re-measured
    candidate_rows = [e for e in exps if e.status not in ("baseline", "remeasure")]
    assert [e.description for e in candidate_rows] == ["4.8", "5.1", "4.9", "3"]
    # the journal written from the in-memory history is the one the ledger gives
    written = (root / ".ratchet" / "journal.md").read_text()
    assert written == journal_markdown(exps, metric_name="score", goal="minimize", title="noisy")
