"""Several experiments in flight (``--workers N``): the keep rule, the branch, the sampler.

The executor here is in-process and thread-safe: the metric is the sum of the
``score:`` lines of the candidate's files at its commit, and a file may say how
long its run takes (``sleep:``), so runs overlap for real.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import git, make_repo

from ratchet import RunOptions, RunSummary, load_study, run_study
from ratchet.decide.judge import make_judge
from ratchet.execute.phases import Candidate, Measurement
from ratchet.models import Experiment, incumbent
from ratchet.observer import Observer
from ratchet.proposers import ReplayProposer
from ratchet.run.trial import MAX_REBASES
from ratchet.store.ledger import Ledger

FILES = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt"]
TOML = """\
[study]
name = "many"
[files]
editable = ["*.txt"]
[run]
command = "true"
budget = 5
[metric]
name = "score"
goal = "minimize"
[decision]
rule = "{rule}"
remeasure_every = 2
[proposer]
kind = "replay"
"""


class SumOfFiles:
    """Metric: the sum of the candidate commit's ``score:`` lines (+ noise); runs sleep."""

    budget = 5.0

    def __init__(self, repo: Path, noise: list[float] | None = None) -> None:
        self.repo = repo
        self.noise = noise or [0.0]
        self.lock = threading.Lock()
        self.calls = 0
        self.flying: Counter[str] = Counter()
        self.most: Counter[str] = Counter()  # the most samples of one commit at once

    def smoke(self, candidate: Candidate) -> Measurement | None:
        return None

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        with self.lock:
            self.calls += 1
            jitter = self.noise[self.calls % len(self.noise)]
            self.flying[candidate.commit] += 1
            self.most[candidate.commit] = max(
                self.most[candidate.commit], self.flying[candidate.commit]
            )
        try:
            score, pause = 0.0, 0.0
            for name in FILES:
                text = subprocess.run(
                    ["git", "show", f"{candidate.commit}:{name}"],
                    cwd=self.repo, capture_output=True, text=True, check=True,
                ).stdout  # fmt: skip
                for line in text.splitlines():
                    key, _, value = line.partition(":")
                    if key == "score":
                        score += float(value)
                    elif key == "sleep":
                        pause += float(value)
            time.sleep(pause)
            return Measurement("ok", metric=score + jitter, duration_s=pause)
        finally:
            with self.lock:
                self.flying[candidate.commit] -= 1

    def confirm(self, candidate: Candidate) -> Measurement:
        raise AssertionError("no [confirm]")


class Assigned(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []

    def assigned(self, worker: str, exp_id: int | None) -> None:
        self.seen.append((worker, exp_id))


def _study(tmp_path: Path, rule: str = "strict") -> Path:
    files = {name: "score: 5\n" for name in FILES}
    study = {"ratchet.toml": TOML.format(rule=rule), "program.md": "x", **files}
    return make_repo(tmp_path / "s", study)


def _replay(tmp_path: Path, proposals: list[dict]) -> Path:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    return path


def _edit(name: str, score: float, pause: float = 0.0, what: str = "") -> dict:
    text = f"score: {score}\n" + (f"sleep: {pause}\n" if pause else "")
    return {"description": what or f"{name}={score}", "edits": {name: text}}


def _rows(root: Path) -> list[Experiment]:
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _run(
    root: Path,
    replay: Path,
    workers: int,
    executor: SumOfFiles,
    observer: Observer | None = None,
    **kw: object,
) -> RunSummary:
    study = load_study(root)
    options = RunOptions(workers=workers, **kw)  # type: ignore[arg-type]
    proposer = ReplayProposer(replay)
    judge = make_judge(study.decision)
    return run_study(study, proposer, judge, options, observer, executor=executor)


def _assert_branch_agrees(root: Path, rows: list[Experiment]) -> None:
    """Every keep is in ratchet/main's history, and the branch's tree is the incumbent's."""
    best = incumbent(rows)
    assert best is not None and best.commit
    head = git(root, "rev-parse", "ratchet/main")
    tree = git(root, "rev-parse", f"{best.commit}^{{tree}}")
    assert git(root, "rev-parse", "ratchet/main^{tree}") == tree
    history = set(git(root, "rev-list", head).split())
    for kept in (e for e in rows if e.status in ("keep", "baseline")):
        assert kept.commit in history, f"#{kept.id} dropped out of ratchet/main"
    assert not [e for e in rows if e.status == "running"]


def test_a_keep_whose_incumbent_moved_is_rebased_and_measured_again(tmp_path: Path) -> None:
    root = _study(tmp_path)
    replay = _replay(tmp_path, [_edit("a.txt", 4), _edit("b.txt", 3, pause=0.6)])
    _run(root, replay, 2, SumOfFiles(root))
    rows = _rows(root)
    base, rebased = rows[0], rows[-1]
    fast, slow = (next(e for e in rows if e.description == d) for d in ("a.txt=4", "b.txt=3"))
    assert (fast.status, fast.metric) == ("keep", 29.0)
    assert slow.status == "discard" and slow.metric == 28.0
    assert slow.reason.startswith(f"beat its parent #{base.id}")
    assert slow.reason.endswith(f"the incumbent moved to #{fast.id}; rebased as #{rebased.id}")
    # the rebase: both changes, built on (and judged against) the new incumbent
    assert rebased.description.startswith(f"rebase of #{slow.id}")
    assert (rebased.status, rebased.metric) == ("keep", 27.0)
    assert (rebased.parent, rebased.parent_id) == (fast.commit, fast.id)
    assert git(root, "rev-parse", "ratchet/main") == rebased.commit
    assert git(root, "rev-parse", f"{rebased.commit}^") == fast.commit  # a fast-forward
    assert {fast.worker, slow.worker} == {"w0", "w1"}


def test_a_rebase_that_conflicts_is_a_discard_naming_the_file(tmp_path: Path) -> None:
    root = _study(tmp_path)
    replay = _replay(tmp_path, [_edit("a.txt", 4), _edit("a.txt", 3, pause=0.6, what="slow")])
    _run(root, replay, 2, SumOfFiles(root))
    rows = _rows(root)
    assert [e.status for e in rows] == ["baseline", "keep", "discard"]
    assert rows[2].reason.endswith("re-applying it there conflicts in a.txt")
    assert git(root, "rev-parse", "ratchet/main") == rows[1].commit


def test_many_workers_and_many_keeps_never_drop_a_kept_commit(tmp_path: Path) -> None:
    root = _study(tmp_path)
    proposals = [
        _edit(FILES[i % len(FILES)], 4 - i * 0.1, pause=0.02 * (i % 4), what=f"p{i}")
        for i in range(18)
    ]
    observer = Assigned()
    summary = _run(root, _replay(tmp_path, proposals), 5, SumOfFiles(root), observer=observer)
    rows = _rows(root)
    _assert_branch_agrees(root, rows)
    kept = [e for e in rows if e.status == "keep"]
    rebases = [e for e in rows if e.description.startswith("rebase of #")]
    assert len(kept) >= 6 and rebases, [(e.id, e.status, e.description) for e in rows]
    for rebase in rebases:  # each original says what became of it
        original = next(e for e in rows if rebase.description.startswith(f"rebase of #{e.id}:"))
        assert original.status == "discard" and f"rebased as #{rebase.id}" in original.reason
        assert rebase.description.count("rebase of #") <= MAX_REBASES  # no endless chase
    # the kept metrics only ever improve, in the order they were kept
    assert [e.metric for e in kept] == sorted((e.metric for e in kept), reverse=True)
    workers = {e.worker for e in rows if e.description.startswith("p")}
    assert len(workers) > 1 and workers <= {f"w{k}" for k in range(5)}
    assert summary.ran == 18
    assert {w for w, _ in observer.seen} == workers | {"w0"}
    assert (tmp_path / "s" / ".ratchet" / "worktrees" / "main" / "w4").is_dir()


def test_one_incumbent_sampler_serves_every_worker(tmp_path: Path) -> None:
    root = _study(tmp_path, rule="noise-aware")
    proposals = [
        _edit(FILES[i % 6], 5 - (i % 3) * 0.01, pause=0.05, what=f"p{i}") for i in range(12)
    ]
    executor = SumOfFiles(root, noise=[0.0, 0.3, -0.3, 0.2, -0.2, 0.1, -0.1])
    _run(root, _replay(tmp_path, proposals), 4, executor)
    rows = _rows(root)
    remeasures = [e for e in rows if e.status == "remeasure"]
    assert remeasures
    # a commit is never measured twice at once: re-measurements are shared, not duplicated
    assert max(executor.most.values()) == 1
    _assert_branch_agrees(root, rows)


def test_max_experiments_lets_the_ones_in_flight_finish(tmp_path: Path) -> None:
    root = _study(tmp_path)
    proposals = [_edit(FILES[i % 6], 5 + i, pause=0.1, what=f"p{i}") for i in range(10)]
    summary = _run(root, _replay(tmp_path, proposals), 3, SumOfFiles(root), max_experiments=4)
    rows = _rows(root)
    assert [e.description for e in rows] == ["baseline", "p0", "p1", "p2", "p3"]
    assert [e.status for e in rows[1:]] == ["discard"] * 4  # each finished, once
    assert summary.ran == 4


class InterruptOne(SumOfFiles):
    """Ctrl-C arrives during the run of the candidate whose file says ``interrupt``."""

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        shown = subprocess.run(
            ["git", "show", f"{candidate.commit}:c.txt"],
            cwd=self.repo, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if "interrupt" in shown:
            time.sleep(0.2)
            return Measurement("interrupted", reason="stopped by Ctrl-C during run")
        return super().measure(candidate, watch)


def test_ctrl_c_with_workers_gives_every_row_one_final_status(tmp_path: Path) -> None:
    root = _study(tmp_path)
    proposals = [
        _edit("a.txt", 6, pause=0.5),
        {"description": "hit", "edits": {"c.txt": "score: 1\ninterrupt\n"}},
        _edit("b.txt", 6, pause=0.5),
        *[_edit("d.txt", 6 + i) for i in range(5)],
    ]
    summary = _run(root, _replay(tmp_path, proposals), 3, InterruptOne(root))
    rows = _rows(root)
    assert summary.stopped == "interrupted"
    hit = next(e for e in rows if e.description == "hit")
    assert hit.status == "interrupted"
    assert "running" not in {e.status for e in rows}
    assert len(rows) <= 4  # nothing new started after Ctrl-C


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_a_bad_number_of_workers_is_refused(tmp_path: Path, bad: str) -> None:
    from conftest import ratchet

    root = _study(tmp_path)
    done = ratchet("run", str(root), "--workers", bad, "--max-experiments", "0")
    assert done.returncode == 2
    assert "number of workers" in done.stderr and "auto" in done.stderr
    assert not (root / ".ratchet").exists()


def test_workers_in_ratchet_toml_must_be_positive(tmp_path: Path) -> None:
    from conftest import ratchet

    root = _study(tmp_path)
    (root / "ratchet.toml").write_text(TOML.format(rule="strict") + "[execute]\nworkers = 0\n")
    git(root, "commit", "-qam", "zero workers")
    done = ratchet("run", str(root), "--max-experiments", "0")
    assert done.returncode == 2 and "workers" in done.stderr, done.stderr


class StopAfterFirst(SumOfFiles):
    """``ratchet stop`` arrives while the first candidates run."""

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        from ratchet.run import control

        if candidate.exp_id > 1:
            control.request(self.repo / ".ratchet", "main", "stop")
        return super().measure(candidate, watch)


def test_ratchet_stop_lets_the_ones_in_flight_finish(tmp_path: Path) -> None:
    root = _study(tmp_path)
    proposals = [_edit(FILES[i % 6], 5 + i, pause=0.3, what=f"p{i}") for i in range(10)]
    summary = _run(root, _replay(tmp_path, proposals), 3, StopAfterFirst(root))
    rows = _rows(root)
    assert summary.stopped == "stopped by `ratchet stop`"
    assert 2 <= len(rows) - 1 <= 4  # what was in flight, not the ten proposals
    assert [e.status for e in rows[1:]] == ["discard"] * (len(rows) - 1)  # finished, once each


def test_the_number_of_workers_may_change_between_runs_of_a_tag(tmp_path: Path) -> None:
    root = _study(tmp_path)
    trees = root / ".ratchet" / "worktrees" / "main"
    proposals = [_edit(FILES[k], 4 - n, what=f"run{n}-{k}") for n in range(3) for k in range(3)]
    replay = _replay(tmp_path, proposals)
    for workers in (3, 1, 2):
        summary = _run(root, replay, workers, SumOfFiles(root), max_experiments=3)
        assert summary.ran == 3
        kids = sorted(p.name for p in trees.iterdir() if (p / ".git").is_file())
        assert kids == ([] if workers == 1 else [f"w{k}" for k in range(workers)])
        assert (trees / ".git").is_file() == (workers == 1)
    rows = _rows(root)
    assert "running" not in {e.status for e in rows} and len(rows) >= 10
    _assert_branch_agrees(root, rows)


def test_workers_take_different_islands(tmp_path: Path) -> None:
    root = _study(tmp_path)
    config = root / "ratchet.toml"
    config.write_text(config.read_text() + '[search]\npolicy = "islands"\nislands = 4\n')
    git(root, "commit", "-qam", "islands")
    proposals = [_edit(FILES[i], 6, pause=0.4, what=f"p{i}") for i in range(3)]
    _run(root, _replay(tmp_path, proposals), 3, SumOfFiles(root))
    rows = [e for e in _rows(root) if e.description.startswith("p")]
    assert len(rows) == 3
    assert len({e.island for e in rows}) == 3  # in flight together, each on its own island


def test_hours_stops_proposing_and_lets_the_ones_in_flight_finish(tmp_path: Path) -> None:
    root = _study(tmp_path)
    proposals = [_edit(FILES[i % 6], 5 + i, pause=0.5, what=f"p{i}") for i in range(30)]
    summary = _run(root, _replay(tmp_path, proposals), 3, SumOfFiles(root), hours=1.0 / 3600)
    rows = _rows(root)
    assert summary.stopped == "time limit (--hours) reached"
    assert 3 <= len(rows) - 1 < 30
    assert {e.status for e in rows[1:]} == {"discard"}  # each finished, none cut short


def test_auto_runs_one_worker_per_core(tmp_path: Path) -> None:
    import os

    root = _study(tmp_path)
    config = root / "ratchet.toml"
    config.write_text(config.read_text() + '[execute]\nworkers = "auto"\n')
    git(root, "commit", "-qam", "auto")
    proposals = [_edit(FILES[i % 6], 6, pause=0.2, what=f"p{i}") for i in range(4)]
    study = load_study(root)
    assert study.execute.workers == "auto"
    run_study(study, ReplayProposer(_replay(tmp_path, proposals)), make_judge(study.decision),
              RunOptions(), executor=SumOfFiles(root))  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    trees = root / ".ratchet" / "worktrees" / "main"
    if cores == 1:
        assert (trees / ".git").is_file()
    else:
        assert sorted(p.name for p in trees.iterdir()) == [f"w{k}" for k in range(cores)]


class Breaks(SumOfFiles):
    """A worker's sample fails with an error of Ratchet's own (a full disk, say)."""

    def measure(self, candidate: Candidate, watch: object = None) -> Measurement:
        from ratchet.errors import StorageError

        if candidate.exp_id == 3:
            raise StorageError("cannot write the log: No space left on device")
        return super().measure(candidate, watch)


def test_a_worker_error_ends_the_run_and_the_next_run_marks_what_was_left(tmp_path: Path) -> None:
    from ratchet.errors import StorageError

    root = _study(tmp_path)
    proposals = [_edit(FILES[i % 6], 6 + i, pause=0.3, what=f"p{i}") for i in range(6)]
    replay = _replay(tmp_path, proposals)
    with pytest.raises(StorageError, match="No space left"):
        _run(root, replay, 2, Breaks(root))
    assert "running" in {e.status for e in _rows(root)}  # the failed one: nothing recorded
    _run(root, replay, 2, SumOfFiles(root), max_experiments=0)
    rows = _rows(root)
    assert next(e for e in rows if e.id == 3).status == "interrupted"
    assert "running" not in {e.status for e in rows}
