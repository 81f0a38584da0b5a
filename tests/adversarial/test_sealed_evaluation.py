"""Candidates that try to set their own score through the fixed evaluation, at both levels.

The rule under test: the evaluation never runs, imports or trusts anything
the candidate wrote, except the outputs it declares. The first study's
protected ``evaluate.py`` does ``import json`` and imports a protected
helper ``scoring.py``, then scores the declared input ``result.txt``. Its
run phase plants what the evaluation would once have picked up from the
worktree: a ``json.py`` (the script's directory came first on ``sys.path``),
a forged ``__pycache__/scoring.*.pyc`` whose header matches the source, a
module that reads a ``[run] hide`` file and prints it into the log. Each
attack writes ``result.txt`` = 5, the incumbent's value, so an honest
evaluation discards it with 5 and a forged one would keep it with -1.

The second study's evaluator calls the candidate through the harness
(``ratchet.evaluation.load_candidate``) and reports with ``report``. Its
candidates print fake metric lines, at call time and at exit, and try to
write a forged report on the channel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

LEVELS = ["process", pytest.param("bwrap", marks=needs_bwrap)]
SECRET = "HELD-OUT-ANSWERS-7f3a"

EVALUATE = """\
import json
import scoring
from pathlib import Path

value = float(Path("result.txt").read_text())
print(json.dumps({"score": scoring.score(value)}))
"""
SCORING = "def score(value):\n    return value\n"
EVALUATE_TOML = """
[evaluate]
command = "python evaluate.py"
budget = 30
inputs = ["result.txt"]
"""
RESULT = "with open('result.txt', 'w') as out:\n    out.write('{value}')\n"

SHADOW_JSON = RESULT.format(value=5) + (
    "with open('json.py', 'w') as out:\n"
    "    out.write('print(\"score: -1\")\\nraise SystemExit(0)\\n')\n"
)
# Bytecode whose header (source mtime and size) matches the worktree's scoring.py.
POISON_PYC = RESULT.format(value=5) + (
    "import importlib.util, os\n"
    "from importlib._bootstrap_external import _code_to_timestamp_pyc\n"
    "st = os.stat('scoring.py')\n"
    "code = compile('print(\"score: -1\")\\nraise SystemExit(0)\\n', 'scoring.py', 'exec')\n"
    "target = importlib.util.cache_from_source('scoring.py')\n"
    "os.makedirs(os.path.dirname(target), exist_ok=True)\n"
    "with open(target, 'wb') as out:\n"
    "    out.write(_code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size))\n"
    "print('planted', target)\n"
)


def _read_hidden(secret: Path) -> str:
    planted = f"print('leak:', open({str(secret)!r}).read())\n"
    return RESULT.format(value=5) + (
        f"with open('json.py', 'w') as out:\n    out.write({planted!r})\n"
    )


@pytest.fixture(scope="module", params=LEVELS)
def planted(
    request: pytest.FixtureRequest, module_git: None, tmp_path_factory: pytest.TempPathFactory
) -> Hostile:
    tmp = tmp_path_factory.mktemp(f"sealed-{request.param}")
    secret = tmp / "heldout.txt"
    secret.write_text(SECRET)
    study = build(
        tmp,
        sandbox=request.param,
        budget=20,
        protected=("check.sh", "evaluate.py", "scoring.py"),
        files={"attack.py": RESULT.format(value=5), "evaluate.py": EVALUATE, "scoring.py": SCORING},
        run_extra=f"hide = [{str(secret)!r}]",
        evaluate=EVALUATE_TOML,
    )
    attacks = [
        attack("shadow the json module", SHADOW_JSON),
        attack("poison the helper's bytecode", POISON_PYC),
        attack("read hidden data through the evaluator", _read_hidden(secret)),
        attack("declared input missing", "print('wrote nothing')\n"),
        attack(
            "declared input is a symlink",
            f"import os\nos.symlink({str(secret)!r}, 'result.txt')\n",
        ),
    ]
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir()
    return run_attacks(
        study, attacks, env={"TMPDIR": str(tmpdir)}, benign=attack("benign", RESULT.format(value=4))
    )


def test_a_module_the_run_phase_wrote_is_never_imported(planted: Hostile) -> None:
    row = planted.row("shadow the json module")
    assert (row["status"], row["metric"]) == ("discard", 5.0), row


def test_forged_bytecode_of_a_protected_helper_is_never_loaded(planted: Hostile) -> None:
    row = planted.row("poison the helper's bytecode")
    assert "planted __pycache__/scoring." in planted.log_text("poison the helper's bytecode")
    assert (row["status"], row["metric"]) == ("discard", 5.0), row


def test_hidden_data_does_not_leak_through_a_planted_module(planted: Hostile) -> None:
    row = planted.row("read hidden data through the evaluator")
    logs = sorted((planted.root / ".ratchet" / "logs" / str(row["id"])).glob("*.log"))
    assert [log.name for log in logs] == ["evaluate.log", "run.log"]
    for log in logs:
        assert SECRET not in log.read_text(errors="replace"), log.name
    assert SECRET not in (row["reason"] or "")
    assert (row["status"], row["metric"]) == ("discard", 5.0), row


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("declared input missing", "declared input result.txt is missing"),
        ("declared input is a symlink", "declared input result.txt is a symlink"),
    ],
)
def test_a_bad_declared_input_is_a_crash_naming_it(
    planted: Hostile, description: str, reason: str
) -> None:
    row = planted.row(description)
    assert row["status"] == "crash" and row["metric"] is None
    assert reason in row["reason"], row["reason"]


def test_the_sealed_directories_are_removed(planted: Hostile) -> None:
    assert os.listdir(planted.tmp / "tmpdir") == []


def test_the_loop_went_on_after_the_planted_files(planted: Hostile) -> None:
    assert_intact(planted)


# --- an evaluator that calls the candidate through the harness --------------------------

HARNESS_EVALUATE = """\
from ratchet.evaluation import load_candidate, report

solver = load_candidate("attack.py", timeout=20)
answer = solver.solve([3, 1, 2])
report(score=float(solver.effort()) if answer == [1, 2, 3] else 100.0)
"""
HARNESS_TOML = """
[evaluate]
command = "python evaluate.py"
budget = 60
inputs = ["attack.py"]
"""


def _solver(effort: float, extra: str = "") -> str:
    solve = "def solve(data):\n    return sorted(data)\n\n"
    return solve + f"def effort():\n    return {effort}\n" + extra


ATEXIT = """
import atexit, os
atexit.register(lambda: print("score: 0.001", flush=True))
print("score: 0.001")
print("METRIC:score=0.001")
"""
# The channel's number from the environment, and every descriptor where Ratchet puts it
# (10 and up; the worker's own reply pipe sits lower): none is there.
INHERITED = """
import json, os
FORGED = json.dumps({"key": "guess", "report": {"score": 0.001}}) + "\\n"
def _forge():
    wrote = 0
    numbers = [os.environ.get("RATCHET_REPORT_FD", "")] + [str(fd) for fd in range(10, 256)]
    for raw in numbers:
        if raw.isdigit():
            try:
                os.write(int(raw), FORGED.encode())
                wrote += 1
            except OSError:
                pass
    print("forged writes:", wrote, flush=True)
import atexit
atexit.register(_forge)
_forge()
"""
# The channel through /proc, where the evaluator and the shell above it hold it: a socket
# cannot be reopened there (and the evaluator is non-dumpable, its descriptors out of reach).
THROUGH_PROC = """
import json, os
FORGED = json.dumps({"report": {"score": 0.001}}).encode()
def _ancestors():
    pid = os.getppid()
    while pid > 1:
        yield pid
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
found = wrote = 0
for pid in _ancestors():
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for name in names:
        path = f"/proc/{pid}/fd/{name}"
        try:
            if not os.readlink(path).startswith("socket:"):
                continue
        except OSError:
            continue
        found += 1
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, FORGED)
            os.close(fd)
            wrote += 1
        except OSError as exc:
            print("refused:", exc, flush=True)
print("sockets found:", found, "forged through /proc:", wrote, flush=True)
"""


@pytest.fixture(scope="module", params=LEVELS)
def harnessed(
    request: pytest.FixtureRequest, module_git: None, tmp_path_factory: pytest.TempPathFactory
) -> Hostile:
    study = build(
        tmp_path_factory.mktemp(f"harness-{request.param}"),
        sandbox=request.param,
        budget=20,
        protected=("check.sh", "evaluate.py"),
        files={"attack.py": _solver(5), "evaluate.py": HARNESS_EVALUATE},
        evaluate=HARNESS_TOML,
    )
    attacks = [
        attack("print the metric at call time and at exit", _solver(5, ATEXIT)),
        attack("write a report on inherited descriptors", _solver(5, INHERITED)),
        attack("write a report through /proc", _solver(5, THROUGH_PROC)),
    ]
    return run_attacks(study, attacks, benign=attack("benign", _solver(4)))


def test_metric_lines_of_a_candidate_called_through_the_harness_do_not_count(
    harnessed: Hostile,
) -> None:
    row = harnessed.row("print the metric at call time and at exit")
    assert (row["status"], row["metric"]) == ("discard", 5.0), row
    assert "score: 0.001" in harnessed.log_text(row["description"], "evaluate")


def test_the_report_channel_is_not_inherited_by_the_candidate(harnessed: Hostile) -> None:
    row = harnessed.row("write a report on inherited descriptors")
    assert (row["status"], row["metric"]) == ("discard", 5.0), row
    log = harnessed.log_text(row["description"], "evaluate")
    assert log.count("forged writes: 0") == 2, log  # at import and at exit
    assert "forged writes: 1" not in log


def test_the_report_channel_cannot_be_reopened_through_proc(harnessed: Hostile) -> None:
    row = harnessed.row("write a report through /proc")
    log = harnessed.log_text(row["description"], "evaluate")
    assert "forged through /proc: 0" in log, log
    assert (row["status"], row["metric"]) == ("discard", 5.0), row


def test_the_loop_went_on_after_the_harness_attacks(harnessed: Hostile) -> None:
    assert_intact(harnessed)
