"""A study on a timing metric through the real loop, on a machine that speeds up.

The study is a real git repository whose run command prints ``runtime_ms``: the
true runtime from ``speed.txt`` (the editable file) times the machine's speed,
plus a fixed noise chosen by ``RATCHET_SEED``. The machine gets 15 % faster
after the baseline's three runs (another job ended): every run appends the
variant it measured to a log outside the repository, which is also how the
test reads the order of the runs.
"""

from __future__ import annotations

from pathlib import Path

from conftest import make_repo, ratchet

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import make_judge
from ratchet.decide.sampling import judged_reference
from ratchet.models import incumbent
from ratchet.proposers import ReplayProposer
from ratchet.store.ledger import Ledger

TOML = """\
[study]
name = "timing"

[files]
editable = ["speed.txt"]
protected = ["run.py"]

[run]
command = "python run.py"
budget = 20
grace = 1
sandbox = "process"  # the runs append to a log under pytest's tmp_path

[metric]
name = "runtime_ms"
goal = "minimize"

[decision]
max_samples = 4
remeasure_every = 0
{decision}

[proposer]
kind = "replay"
"""

RUN_PY = """\
import os, pathlib, sys
LOG = pathlib.Path({log!r})
NOISE = [0.0, 0.6, -0.6, 0.3, -0.3, 0.1, -0.1]
value, variant = open("speed.txt").read().split()
seed = int(os.environ["RATCHET_SEED"])
runs = LOG.read_text().split() if LOG.exists() else []
machine = 1.0 if len(runs) < 3 else 0.85  # 15 % faster after the baseline
LOG.write_text(" ".join(runs + [variant]))
if variant == {broken!r} and len(runs) >= 3:
    sys.exit("this variant no longer runs")
print("runtime_ms:", float(value) * machine + NOISE[seed % len(NOISE)])
"""

NO_OP = {"description": "rename the variant", "edits": {"speed.txt": "100 b\n"}}


def _run(
    tmp_path: Path, write_replay, decision: str = "", broken: str = ""
) -> tuple[list, str, Path]:
    log = tmp_path / "runs.log"
    root = make_repo(
        tmp_path / "s",
        {
            "ratchet.toml": TOML.format(decision=decision),
            "program.md": "Make it faster.\n",
            "speed.txt": "100 a\n",
            "run.py": RUN_PY.format(log=str(log), broken=broken),
        },
    )
    study = load_study(root)
    judge = make_judge(study.decision, study.metric.name)
    summary = run_study(
        study, ReplayProposer(write_replay([NO_OP])), judge, RunOptions(max_experiments=1)
    )
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()
        best = incumbent(exps)
        assert best is not None and summary.best == judged_reference(exps, best)  # one best
        return exps, log.read_text(), root
    finally:
        ledger.close()


def test_a_timing_metric_is_judged_in_pairs_and_drift_keeps_nothing(
    tmp_path: Path, write_replay
) -> None:
    exps, runs, root = _run(tmp_path, write_replay)
    assert runs == "a a a b a a b b a a b"  # baseline, then pairs C I, I C, C I, I C
    candidate = next(e for e in exps if e.description == "rename the variant")
    assert candidate.status == "discard" and "paired" in candidate.reason
    assert len(candidate.samples) == 4
    assert [e.status for e in exps].count("remeasure") == 4  # one incumbent run per pair
    incumbent = [*exps[0].samples, *(e.metric for e in exps if e.status == "remeasure")]
    judged = sum(incumbent) / len(incumbent)
    status = ratchet("status", str(root))
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if x.startswith("incumbent"))
    assert f"{judged:.4g}"[:4] in line  # the judged reference, not the baseline's 100.0
    assert judged < 95.0 and "100" not in line.split("(")[0]


def test_without_pairs_the_faster_machine_passes_for_a_faster_program(
    tmp_path: Path, write_replay
) -> None:
    exps, runs, _ = _run(tmp_path, write_replay, "interleave = false")
    assert runs == "a a a b b b"  # the candidate alone, against the baseline's old runs
    candidate = next(e for e in exps if e.description == "rename the variant")
    assert candidate.status == "keep"  # a no-op kept: what interleaving prevents


def test_try_prints_the_judged_reference_as_best(tmp_path: Path, write_replay) -> None:
    _, _, root = _run(tmp_path, write_replay)
    (root / "speed.txt").write_text("100 c\n")  # another no-op, tried by hand
    done = ratchet("try", str(root), "-m", "rename again")
    assert done.returncode == 0, done.stderr
    ledger = Ledger(root / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()
    finally:
        ledger.close()
    incumbent = [*exps[0].samples, *(e.metric for e in exps if e.status == "remeasure")]
    assert len(incumbent) == 3 + 8  # the baseline, and one incumbent run per pair of two tries
    best = sum(incumbent) / len(incumbent)
    assert done.stdout.startswith("discard runtime_ms=")
    assert done.stdout.endswith(f"(best {best:.6g})\n")  # not the baseline's 100


def test_an_incumbent_that_no_longer_runs_is_not_asked_again(
    tmp_path: Path, write_replay
) -> None:
    exps, runs, _ = _run(tmp_path, write_replay, broken="a")  # the incumbent fails after baseline
    order = runs.split()
    assert order[:5] == ["a", "a", "a", "b", "a"]  # the baseline, a pair whose incumbent failed
    assert set(order[5:]) == {"b"}  # then the candidate alone
    assert [e.status for e in exps].count("remeasure") == 1
    candidate = next(e for e in exps if e.description == "rename the variant")
    assert candidate.status in ("keep", "discard") and "paired" not in candidate.reason
