"""The circle_packing study: its evaluator as a process, and the study through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ratchet

STUDY = Path(__file__).resolve().parents[1] / "examples" / "circle_packing"
BASELINE = 2.467439107  # what the shipped initial_program.py packs (deterministic)


def evaluate(tmp_path: Path, circles: object) -> subprocess.CompletedProcess[str]:
    """Run the shipped evaluate.py on a packing.json holding ``circles``."""
    (tmp_path / "evaluate.py").write_bytes((STUDY / "evaluate.py").read_bytes())
    (tmp_path / "packing.json").write_text(json.dumps({"circles": circles}))
    return subprocess.run(
        [sys.executable, "evaluate.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )


def grid(r: float = 0.1) -> list[list[float]]:
    """25 touching circles of radius ``r`` on a 5x5 grid plus one tiny one in a corner gap."""
    circles = [[r + 2 * r * i, r + 2 * r * j, r] for i in range(5) for j in range(5)]
    return [*circles, [2 * r, 2 * r, (2**0.5 - 1) * r * 0.999]]


def test_a_valid_packing_scores_its_sum_of_radii(tmp_path: Path) -> None:
    done = evaluate(tmp_path, grid())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sum_radii: {2.5 + (2**0.5 - 1) * 0.1 * 0.999:.9f}"


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (lambda c: c.__setitem__(7, [*c[7][:2], 0.1 + 2e-9]), "circles 2 and 7 overlap by 2e-09"),
        (lambda c: c.__setitem__(0, [0.05, 0.1, 0.1]), "circle 0 leaves the unit square by"),
        (lambda c: c.__setitem__(24, [0.9, 0.9, 0.100000002]), "circle 24 leaves the unit square"),
        (lambda c: c.pop(), "the packing has 25 circles; it needs exactly 26"),
        (lambda c: c.__setitem__(3, [0.5, 0.5, -0.1]), "circle 3 has a negative radius"),
        (lambda c: c.__setitem__(5, [0.5, "x", 0.1]), "circle 5 is [0.5, 'x', 0.1]"),
    ],
)
def test_an_invalid_packing_is_refused_naming_the_circle(
    tmp_path: Path, change: object, culprit: str
) -> None:
    circles = grid()
    change(circles)  # type: ignore[operator]
    done = evaluate(tmp_path, circles)
    assert done.returncode == 3  # Ratchet records exit 3 as `rejected`
    assert culprit in done.stderr.strip().splitlines()[-1]
    assert "sum_radii" not in done.stdout


def test_touching_within_the_tolerance_is_valid(tmp_path: Path) -> None:
    circles = grid()
    circles[7][2] += 5e-10  # overlaps circle 6 by 5e-10, inside TOL = 1e-9
    assert evaluate(tmp_path, circles).returncode == 0


def test_a_missing_packing_is_a_crash_not_a_rejection(tmp_path: Path) -> None:
    (tmp_path / "evaluate.py").write_bytes((STUDY / "evaluate.py").read_bytes())
    done = subprocess.run(
        [sys.executable, "evaluate.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1 and "packing.json not found" in done.stderr


def test_the_study_through_the_cli(tmp_path: Path) -> None:
    """Baseline, two mutate experiments, then replayed proposals: an edit outside the
    EVOLVE-BLOCK (skipping make_valid) and a crash inside it."""
    study = tmp_path / "packing"
    assert ratchet("init", str(study), "--template", "circle_packing").returncode == 0
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    program = (study / "initial_program.py").read_text()
    overlapping = program.replace("    circles = make_valid(relax(make_valid(start), stop_at))\n",
                                  "    circles = [[0.5, 0.5, 0.2]] * N\n")  # fmt: skip
    crashing = program.replace("    weight = PENALTY\n", "    weight = PENALTY / 0\n")
    replay = tmp_path / "replay.jsonl"
    replay.write_text(
        "".join(
            json.dumps({"description": d, "edits": {"initial_program.py": text}}) + "\n"
            for d, text in (("all in one place", overlapping), ("divide by zero", crashing))
        )
    )
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "2",
                   "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--tag", "t", "--json").stdout)
    assert [r["status"] for r in rows][0] == "baseline"
    assert rows[0]["metric"] == pytest.approx(BASELINE, abs=1e-9)
    for row in rows[1:3]:  # mutate: a valid packing always, kept only when larger
        assert row["status"] in ("keep", "discard") and row["metric"] is not None
        assert (row["status"] == "keep") == (row["metric"] > max_before(rows, row))
    assert rows[3]["status"] == "rejected" and rows[3]["metric"] is None  # never ran
    assert "outside the EVOLVE-BLOCK" in rows[3]["reason"]
    assert rows[4]["status"] == "crash" and "ZeroDivisionError" in rows[4]["reason"]


def max_before(rows: list[dict], row: dict) -> float:
    """The best metric kept before ``row``."""
    return max(
        r["metric"] for r in rows if r["id"] < row["id"] and r["status"] in ("baseline", "keep")
    )
