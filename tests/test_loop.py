"""The loop end to end on real git repositories and real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_TOML, git, make_repo

from ratchet import ConfigError, RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.proposers import ReplayProposer
from ratchet.run.loop import BaselineFailed
from ratchet.store.ledger import Ledger

# value.txt is a shell script (the run phase); check.sh scores what it left in out.txt.
EVAL_TOML = FAST_TOML.replace(
    "[metric]", '[evaluate]\ncommand = "sh check.sh"\nbudget = 5\ninputs = ["out.txt"]\n\n[metric]'
).replace('command = "cat value.txt"', 'command = "sh value.txt"')


def _study(
    tmp_path: Path, toml: str, value: str, check: str = "x", solve_py: str | None = None
) -> Path:
    """A committed study in ``tmp_path/s``: ``value.txt`` and ``check.sh`` as given."""
    files = {"ratchet.toml": toml, "program.md": "x", "value.txt": value, "check.sh": check}
    if solve_py is not None:
        files["solve.py"] = solve_py
    return make_repo(tmp_path / "s", files)


def _run(root: Path, replay: Path, **options: object) -> list:
    study = load_study(root)
    run_study(study, ReplayProposer(replay), StrictJudge(), RunOptions(**options))
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        return ledger.experiments()
    finally:
        ledger.close()


def _value(score: str, description: str = "") -> dict:
    return {
        "description": description or f"score {score}",
        "edits": {"value.txt": f"score: {score}\n"},
    }


def test_keep_discard_and_the_ledger(fast_study: Path, write_replay) -> None:
    head = git(fast_study, "rev-parse", "HEAD")
    replay = write_replay([_value("3"), _value("4"), _value("2")])
    exps = _run(fast_study, replay)
    assert [e.status for e in exps] == ["baseline", "keep", "discard", "keep"]
    assert [e.metric for e in exps] == [5.0, 3.0, 4.0, 2.0]
    # kept experiments are commits on ratchet/main, in order
    branch = git(fast_study, "rev-parse", "ratchet/main")
    assert branch == exps[3].commit
    assert git(fast_study, "show", "ratchet/main:value.txt") == "score: 2"
    assert git(fast_study, "rev-parse", "ratchet/main~1") == exps[1].commit
    # every experiment has its own ref, kept or not
    for exp in exps:
        assert git(fast_study, "rev-parse", f"refs/ratchet/main/exp/{exp.id}") == exp.commit
    assert git(fast_study, "show", f"{exps[2].commit}:value.txt") == "score: 4"
    # the user's checkout is untouched
    assert git(fast_study, "rev-parse", "HEAD") == head
    assert git(fast_study, "branch", "--show-current") == "main"
    assert git(fast_study, "status", "--porcelain") == ""
    assert (fast_study / "value.txt").read_text() == "score: 5\n"
    assert ".ratchet/" in (fast_study / ".git" / "info" / "exclude").read_text()


def test_results_tsv_has_autoresearch_columns(fast_study: Path, write_replay) -> None:
    _run(fast_study, write_replay([_value("3"), _value("nan")]))
    lines = (fast_study / ".ratchet" / "results-main.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["commit", "score", "memory_gb", "status", "description"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[3] for r in rows] == ["baseline", "keep", "crash"]
    assert rows[1][1] == "3.000000" and rows[2][1] == ""  # a crash never gets a fake score


@pytest.mark.parametrize(
    "edits, reason",
    [
        ({"ratchet.toml": "x"}, "ratchet.toml is protected"),
        ({"program.md": "be evil"}, "program.md is protected"),
        ({"check.sh": "exit 0"}, "check.sh is protected"),
        ({"../outside.txt": "x"}, "outside the study"),
        ({"/etc/passwd": "x"}, "outside the study"),
        ({".git/config": "x"}, "inside git"),
        ({"new.txt": "score: 0"}, "not an editable file"),
        ({"value.txt": "score: 5\n"}, "changes nothing"),
    ],
)
def test_forbidden_edits_are_rejected_unrun(fast_study: Path, write_replay, edits, reason) -> None:
    replay = write_replay([{"description": "sneaky", "edits": edits}, _value("1")])
    exps = _run(fast_study, replay)
    assert [e.status for e in exps] == ["baseline", "rejected", "keep"]
    rejected = exps[1]
    assert reason in rejected.reason
    assert rejected.commit is None and rejected.metric is None and rejected.duration_s == 0
    assert not (fast_study / ".ratchet" / "logs" / str(rejected.id)).exists()
    assert git(fast_study, "show", "ratchet/main:check.sh") == "echo protected"


def test_syntax_error_rejected_before_running(tmp_path: Path, write_replay) -> None:
    toml = FAST_TOML.replace('["value.txt"]', '["value.txt", "solve.py"]')
    root = _study(tmp_path, toml, value="score: 5\n", solve_py="x = 1\n")
    exps = _run(root, write_replay([{"description": "broken", "edits": {"solve.py": "def (:\n"}}]))
    assert (
        exps[1].status == "rejected"
        and "syntax" in exps[1].reason
        and "solve.py:1" in exps[1].reason
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("score: nan\n", "nan"),
        ("score: inf\n", "inf"),
        ("no metric here\n", "score"),
    ],
)
def test_bad_metric_is_a_crash(fast_study: Path, write_replay, text: str, reason: str) -> None:
    exps = _run(fast_study, write_replay([{"description": "bad", "edits": {"value.txt": text}}]))
    assert exps[1].status == "crash"
    assert exps[1].metric is None
    assert reason in exps[1].reason


def test_crash_and_timeout_record_reason_and_tail(tmp_path: Path, write_replay) -> None:
    toml = FAST_TOML.replace('command = "cat value.txt"', 'command = "sh value.txt"').replace(
        "budget = 10", "budget = 1"
    )
    root = _study(tmp_path, toml, value="echo score: 5\n")
    replay = write_replay(
        [
            {"description": "boom", "edits": {"value.txt": "echo before-the-crash; exit 3\n"}},
            {"description": "slow", "edits": {"value.txt": "trap '' TERM; sleep 30\n"}},
            {"description": "fine", "edits": {"value.txt": "echo score: 4\n"}},
        ]
    )
    exps = _run(root, replay)
    assert [e.status for e in exps] == ["baseline", "crash", "timeout", "keep"]
    assert "code 3" in exps[1].reason and "before-the-crash" in exps[1].reason
    assert "budget" in exps[2].reason
    assert exps[2].duration_s < 10  # killed at budget + grace, not after the sleep
    log = Path(exps[1].log_dir) / "run.log"
    assert "before-the-crash" in log.read_text()


def test_evaluate_phase_is_the_only_metric_source(tmp_path: Path, write_replay) -> None:
    toml = EVAL_TOML
    check = "read v < out.txt; echo score: $v\n"
    root = _study(tmp_path, toml, check=check, value="echo 5 > out.txt\n")
    cheat = "echo 9 > out.txt; echo score: 0; echo 'echo score: -100' > check.sh\n"
    replay = write_replay(
        [
            {"description": "cheat", "edits": {"value.txt": cheat}},
            {"description": "honest", "edits": {"value.txt": "echo 4 > out.txt\n"}},
        ]
    )
    exps = _run(root, replay)
    assert [e.status for e in exps] == ["baseline", "discard", "keep"]
    # the fake metric line and the rewritten check.sh were both ignored
    assert exps[1].metric == 9.0 and exps[2].metric == 4.0


def test_evaluate_refusal_is_rejected_with_its_reason(tmp_path: Path, write_replay) -> None:
    toml = EVAL_TOML
    check = (
        "read v < out.txt\n"
        "[ $v = peek ] && { echo 'rejected: model is not causal'; exit 3; }\n"
        "[ $v = broken ] && { echo 'evaluator error'; exit 1; }\n"
        "echo score: $v\n"
    )
    root = _study(tmp_path, toml, check=check, value="echo 5 > out.txt\n")
    replay = write_replay(
        [
            {"description": "peek", "edits": {"value.txt": "echo peek > out.txt\n"}},
            {"description": "broken", "edits": {"value.txt": "echo broken > out.txt\n"}},
        ]
    )
    exps = _run(root, replay)
    assert exps[1].status == "rejected" and "causal" in exps[1].reason  # exit 3: refused
    assert exps[2].status == "crash" and "evaluator error" in exps[2].reason  # exit 1: error


def test_stale_outputs_never_leak_into_the_next_experiment(tmp_path: Path, write_replay) -> None:
    toml = EVAL_TOML
    root = _study(
        tmp_path, toml, check="read v < out.txt; echo score: $v\n", value="echo 5 > out.txt\n"
    )
    replay = write_replay(
        [
            {"description": "good", "edits": {"value.txt": "echo 3 > out.txt\n"}},
            {"description": "writes nothing", "edits": {"value.txt": "true\n"}},
        ]
    )
    exps = _run(root, replay)
    assert exps[2].status == "crash"  # out.txt from #2 was wiped, so evaluate found no metric


def test_max_experiments_zero_measures_only_the_baseline(fast_study: Path, write_replay) -> None:
    exps = _run(fast_study, write_replay([_value("1")]), max_experiments=0)
    assert [e.status for e in exps] == ["baseline"]
    again = _run(fast_study, write_replay([_value("1")]), max_experiments=1)
    assert [e.status for e in again] == ["baseline", "keep"]  # the baseline is not measured twice


def test_failing_baseline_stops_with_a_clear_error(fast_study: Path, write_replay) -> None:
    (fast_study / "value.txt").write_text("nothing\n")
    git(fast_study, "commit", "-qam", "break it")
    with pytest.raises(BaselineFailed, match="baseline"):
        _run(fast_study, write_replay([_value("1")]))


def test_tags_are_separate_but_ids_unique(fast_study: Path, write_replay) -> None:
    _run(fast_study, write_replay([_value("3")]), tag="a")
    exps = _run(fast_study, write_replay([_value("4")]), tag="b")
    assert [(e.tag, e.status) for e in exps] == [
        ("a", "baseline"),
        ("a", "keep"),
        ("b", "baseline"),
        ("b", "keep"),
    ]
    assert len({e.id for e in exps}) == 4
    assert git(fast_study, "show", "ratchet/a:value.txt") == "score: 3"
    assert git(fast_study, "show", "ratchet/b:value.txt") == "score: 4"


def test_uncommitted_protected_change_is_refused(fast_study: Path, write_replay) -> None:
    (fast_study / "check.sh").write_text("echo changed\n")
    with pytest.raises(ConfigError, match="check.sh differs from the committed version"):
        _run(fast_study, write_replay([_value("1")]))


def test_diff_stats_are_recorded(fast_study: Path, write_replay) -> None:
    exps = _run(fast_study, write_replay([_value("3\nmore: 1\nlines: 2")]))
    assert exps[1].meta["diff"] == {"added": 3, "removed": 1, "files": 1}


def test_output_flood_is_capped_and_the_run_goes_on(tmp_path: Path, write_replay) -> None:
    toml = FAST_TOML.replace('command = "cat value.txt"', 'command = "sh value.txt"').replace(
        "grace = 1", "grace = 1\nlog_cap_mb = 1"
    )
    root = _study(tmp_path, toml, value="echo score: 5\n")
    flood = "head -c 20000000 /dev/zero | tr '\\0' 'x' | fold -w 100\necho\necho score: 4\n"
    exps = _run(root, write_replay([{"description": "flood", "edits": {"value.txt": flood}}]))
    assert exps[1].status == "keep" and exps[1].metric == 4.0  # the line after the flood counted
    log = Path(exps[1].log_dir) / "run.log"
    assert 400_000 <= log.stat().st_size <= 1_000_000  # the experiment's cap, for all its logs
    assert log.read_bytes().endswith(b"x" * 100 + b"\nscore: 4\n")
    assert b"bytes omitted" in log.read_bytes()


def test_uncommitted_editable_change_is_announced(fast_study: Path, write_replay) -> None:
    from ratchet.observer import Observer

    class Notes(Observer):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    (fast_study / "value.txt").write_text("score: 1\n")
    notes = Notes()
    run_study(
        load_study(fast_study),
        ReplayProposer(write_replay([])),
        StrictJudge(),
        RunOptions(max_experiments=0),
        notes,
    )
    assert any("value.txt has uncommitted changes" in line for line in notes.lines)


RUNLESS_TOML = """\
[study]
name = "runless"

[files]
editable = ["solve.py"]
protected = ["evaluate.py"]

[run]
sandbox = "process"

[evaluate]
command = "python evaluate.py"
budget = 30
inputs = ["solve.py"]

[metric]
name = "score"

[decision]
rule = "strict"
"""
RUNLESS_EVALUATE = """\
from ratchet.evaluation import load_candidate, report

solver = load_candidate("solve.py", timeout=10)
report(score=float(solver.score()), calls=1)
"""


def test_without_a_run_command_the_evaluator_runs_the_candidate(
    tmp_path: Path, write_replay
) -> None:
    files = {
        "ratchet.toml": RUNLESS_TOML,
        "program.md": "x",
        "evaluate.py": RUNLESS_EVALUATE,
        "solve.py": "def score():\n    return 5\n",
    }
    root = make_repo(tmp_path / "s", files)
    lie = "print('score: -5')\ndef score():\n    print('score: -9')\n    return 4\n"
    replay = write_replay(
        [
            {"description": "lie", "edits": {"solve.py": lie}},
            {"description": "raise", "edits": {"solve.py": "def score():\n    1 / 0\n"}},
        ]
    )
    exps = _run(root, replay)
    outcomes = [(e.status, e.metric) for e in exps]
    assert outcomes == [("baseline", 5.0), ("keep", 4.0), ("crash", None)]
    assert exps[1].extras == {"calls": 1.0}  # the reported extra; printed lines count for nothing
    assert not (Path(exps[1].log_dir) / "run.log").exists()  # no run phase at all
    assert "score: -9" in (Path(exps[1].log_dir) / "evaluate.log").read_text()
    assert "CandidateError: ZeroDivisionError: division by zero" in exps[2].reason
