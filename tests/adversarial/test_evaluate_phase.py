"""With an evaluate phase, the candidate cannot speak for the metric or change the judge.

The study's run phase writes ``result.txt``; the protected ``evaluate.py``
reads it and prints the score. A candidate that prints a fake score line
is ignored, and one that rewrites ``evaluate.py`` while it runs is judged by
the pinned copy anyway: at the process level its rewrite is undone before
the evaluate phase, under bwrap the write itself is refused. The same
attacks run at both levels.
"""

from __future__ import annotations

import pytest

from .conftest import Hostile, assert_intact, attack, build, needs_bwrap, run_attacks

EVALUATE = """\
from pathlib import Path

print(f"score: {float(Path('result.txt').read_text())}")
"""
EVALUATE_TOML = """
[evaluate]
command = "python evaluate.py"
budget = 20
inputs = ["result.txt"]
"""


def _result(value: float) -> str:
    return f"with open('result.txt', 'w') as out:\n    out.write('{value}')\n"


ATTACKS = [
    attack(
        "print a fake metric in the run phase",
        _result(5) + "print('score: 0.001')\nprint('METRIC:score=0.001')\n",
    ),
    attack(
        "rewrite the protected evaluation at run time",
        "import os\n"
        "rewrote = 0\n"
        "try:\n"
        "    with open('evaluate.py', 'w') as out:\n"
        "        out.write(\"print('score: 0.0')\\n\")\n"
        "    rewrote += 1\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n"
        "try:\n"
        "    with open('evaluate.new', 'w') as out:\n"
        "        out.write(\"print('score: 0.0')\\n\")\n"
        "    os.replace('evaluate.new', 'evaluate.py')\n"
        "    rewrote += 1\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n"
        "print('rewrote:', rewrote)\n" + _result(5),
    ),
]


@pytest.fixture(scope="module", params=["process", pytest.param("bwrap", marks=needs_bwrap)])
def attacked(
    request: pytest.FixtureRequest, module_git: None, tmp_path_factory: pytest.TempPathFactory
) -> Hostile:
    study = build(
        tmp_path_factory.mktemp(f"evaluate-{request.param}"),
        sandbox=request.param,
        budget=20,
        protected=("check.sh", "evaluate.py"),
        files={"attack.py": _result(5), "evaluate.py": EVALUATE},
        evaluate=EVALUATE_TOML,
    )
    benign = attack("benign", _result(4))
    return run_attacks(study, ATTACKS, benign=benign)


def test_a_fake_metric_line_in_the_run_phase_is_ignored(attacked: Hostile) -> None:
    row = attacked.row("print a fake metric in the run phase")
    assert (row["status"], row["metric"]) == ("discard", 5.0)
    assert row["reason"] == "5 does not beat the incumbent's 5"


def test_the_evaluate_phase_uses_the_pinned_copy(attacked: Hostile) -> None:
    row = attacked.row("rewrite the protected evaluation at run time")
    assert (row["status"], row["metric"]) == ("discard", 5.0)
    # What the candidate managed in its own worktree: both writes at the process
    # level (undone before the evaluate phase), neither under bwrap.
    assert row["extras"]["rewrote"] == (2.0 if attacked.level == "process" else 0.0)
    assert "score: 5.0" in attacked.log_text(row["description"], "evaluate")


def test_the_loop_went_on_and_the_checkout_is_intact(attacked: Hostile) -> None:
    assert_intact(attacked)
