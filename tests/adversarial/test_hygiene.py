"""Names, text and numbers a candidate controls, made harmless before anyone trusts them.

Whatever the sandbox level (these are decided outside it, so one study at
``process`` shows them all):

- paths: editable patterns are anchored at the study root, so with
  ``editable = ["attack.py"]`` a proposal creating ``-rf/attack.py``,
  ``a\\nb/attack.py`` or ``sub/attack.py`` is ``rejected`` by the policy and
  never committed; names with control characters, a leading ``-`` or an empty
  component are refused with the name shown escaped;
- text: ESC sequences and line breaks in a description or a reason never
  reach the console, results.tsv, the journal, ``ratchet log``/``show``, the
  commit message or the next prompt (the ledger keeps the raw text);
- numbers: a metric written with non-ASCII digits (``score: ١``,
  ``METRIC:score=０``) is not a metric line, so the run is a ``crash``.

Each attack also changes ``attack.py`` to print a score better than the
baseline's, so on code that lets the trick through it would be kept.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import git, ratchet

from ratchet.models import Context
from ratchet.proposers.prompt import build_prompt
from ratchet.store.journal import render_journal
from ratchet.store.ledger import Ledger

from .conftest import Hostile, assert_intact, build, run_attacks

BETTER = 'print("score: 4.5")\n'
CONTROL = "\x1b[2J\x1b]0;owned\x07\x1b[31m"
FAKE_ROW = "\n#99   keep       score=0.0001        0.1s  a fake row"
DESCRIPTION = f"colours{CONTROL} and\ta newline{FAKE_ROW}"
REASON_CODE = (  # the last line of output becomes the reason
    "import sys\n"
    f"sys.stderr.write({'working' + FAKE_ROW + chr(10) + CONTROL + 'crashed' + chr(10)!r})\n"
    "sys.exit(3)\n"
)


def _sneak(description: str, path: str) -> dict:
    return {"description": description, "edits": {"attack.py": BETTER, path: "x = 1\n"}}


ATTACKS = [
    _sneak("dash directory", "-rf/attack.py"),
    _sneak("newline in a directory", "a\nb/attack.py"),
    _sneak("escape in a directory", "\x1b[2J/attack.py"),
    _sneak("doubled slash", "sub//attack.py"),
    _sneak("suffix match", "sub/attack.py"),
    _sneak("dash file name", "-n"),
    {"description": DESCRIPTION, "edits": {"attack.py": REASON_CODE}},
    {"description": "arabic-indic digits", "edits": {"attack.py": 'print("score: \u0661")\n'}},
    {"description": "full-width digits", "edits": {"attack.py": 'print("METRIC:score=\uff10")\n'}},
    {
        "description": "non-ascii digits in json",
        "edits": {"attack.py": 'print(\'{"score": 4.5}\')\nprint(\'{"score": \u0661}\')\n'},
    },
]


@pytest.fixture(scope="module")
def attacked(module_git: None, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    study = build(tmp_path_factory.mktemp("hygiene"), sandbox="process")
    return run_attacks(study, ATTACKS)


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        (
            "dash directory",
            "policy: '-rf/attack.py' has a name starting with '-',"
            " which commands would read as an option",
        ),
        (
            "newline in a directory",
            "policy: 'a\\nb/attack.py' has a control or invisible character in its name",
        ),
        (
            "escape in a directory",
            "policy: '\\x1b[2J/attack.py' has a control or invisible character in its name",
        ),
        (
            "doubled slash",
            "policy: 'sub//attack.py' has an empty path component (a doubled or trailing '/')",
        ),
        ("suffix match", "policy: sub/attack.py is not an editable file of this study"),
        (
            "dash file name",
            "policy: '-n' has a name starting with '-', which commands would read as an option",
        ),
    ],
    ids=["dash directory", "newline", "escape", "doubled slash", "suffix match", "dash file"],
)
def test_paths_outside_the_anchored_patterns_are_rejected(
    attacked: Hostile, description: str, reason: str
) -> None:
    row = attacked.row(description)
    assert (row["status"], row["reason"]) == ("rejected", reason)
    assert row["commit"] is None, "committed"
    assert "\x1b" not in attacked.done.stdout and "a\nb" not in attacked.done.stdout


@pytest.mark.parametrize(
    "description", ["arabic-indic digits", "full-width digits", "non-ascii digits in json"]
)
def test_non_ascii_digits_are_not_a_metric(attacked: Hostile, description: str) -> None:
    row = attacked.row(description)
    if description.endswith("json"):  # the ASCII line before it is the last valid one
        assert (row["status"], row["metric"]) == ("keep", 4.5)
        return
    assert (row["status"], row["metric"]) == ("crash", None)
    missing = "no line 'score: VALUE' (or METRIC:score=VALUE, or a JSON line with \"score\")"
    assert row["reason"].endswith(f"{missing} in the output"), row["reason"]


def test_control_characters_never_reach_the_console(attacked: Hostile) -> None:
    row = attacked.row(DESCRIPTION)  # the ledger keeps what the proposer sent, as sent
    assert row["status"] == "crash" and CONTROL in row["reason"]
    printed = attacked.done.stdout + attacked.done.stderr
    assert "\x1b" not in printed and "\x07" not in printed
    assert "a fake row" in printed, "the description is shown"
    assert not [line for line in printed.splitlines() if line.startswith("#99")], printed


def test_results_tsv_has_one_clean_row_per_experiment(attacked: Hostile) -> None:
    lines = (attacked.root / ".ratchet" / "results-main.tsv").read_text().splitlines()
    assert len(lines) == 1 + len(attacked.rows)
    assert all(len(line.split("\t")) == 5 for line in lines), lines
    assert not any(c in "".join(lines) for c in "\x1b\x07")
    [mine] = [line for line in lines if "colours" in line]
    assert mine.endswith("\tcrash\tcolours and a newline #99 keep score=0.0001 0.1s a fake row")


@pytest.mark.parametrize(
    "command",
    [("log", "{dir}"), ("show", "{id}", "{dir}"), ("show", "{id}", "{dir}", "--log"),
     ("status", "{dir}")],
    ids=["log", "show", "show --log", "status"],
)
def test_control_characters_never_reach_log_or_show(
    attacked: Hostile, command: tuple[str, ...]
) -> None:
    exp_id = str(attacked.row(DESCRIPTION)["id"])
    done = ratchet(*(part.format(id=exp_id, dir=attacked.root) for part in command))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    if "--log" in command:  # the captured output, line by line, as the candidate printed it
        assert "#99   keep" in done.stdout and "crashed" in done.stdout
    else:
        assert not [line for line in done.stdout.splitlines() if line.startswith("#99")]


def test_control_characters_never_reach_the_journal_commit_or_prompt(attacked: Hostile) -> None:
    written = (attacked.root / ".ratchet" / "journal.md").read_text()
    assert "colours and a newline" in written and "\x1b" not in written
    row = attacked.row(DESCRIPTION)
    message = git(attacked.root, "log", "-1", "--format=%B", row["commit"])
    assert message.startswith("colours and a newline #99") and "\x1b" not in message
    ledger = Ledger(attacked.root / ".ratchet" / "ledger.sqlite")
    try:
        history = ledger.experiments()
    finally:
        ledger.close()
    context = Context(
        study_name="hostile",
        tag="main",
        program="Lower the score.\n",
        files={"attack.py": BETTER},
        parent_commit=attacked.head,
        metric_name="score",
        goal="minimize",
        history=history,
        incumbent=history[0],
        last_failure_log=row["reason"],
        journal=render_journal(history, metric_name="score", goal="minimize"),
    )
    prompt = build_prompt(context, 32000)
    text = json.dumps([prompt.system, prompt.user])
    assert "colours and a newline" in text and "crashed" in text
    assert "\\u001b" not in text and "\\u0007" not in text
    assert "\n#99" not in prompt.user


def test_no_odd_name_reached_the_branch(attacked: Hostile) -> None:
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "-z", "ratchet/main"],
        cwd=attacked.root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    files = [b"attack.py", b"check.sh", b"program.md", b"ratchet.toml"]
    assert sorted(n for n in names if n) == files


def test_the_loop_went_on_and_the_checkout_is_intact(attacked: Hostile) -> None:
    assert_intact(attacked)
