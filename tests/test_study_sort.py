"""The sort study through the real CLI: timing with the noise-aware rule, wrong sorts refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

from conftest import ratchet

STUDY = Path(__file__).resolve().parents[1] / "examples" / "sort"


def proposals(path: Path, changes: dict[str, tuple[str, str]]) -> Path:
    """A replay file: per description, one (old, new) text replacement in the shipped sort.py."""
    source = (STUDY / "sort.py").read_text()
    lines = []
    for description, (old, new) in changes.items():
        assert old in source
        edits = {"sort.py": source.replace(old, new)}
        lines.append(json.dumps({"description": description, "edits": edits}) + "\n")
    path.write_text("".join(lines))
    return path


def test_the_study_through_the_cli(tmp_path: Path) -> None:
    """Baseline (3 timed samples), then sorts that are wrong, raise or hang."""
    study = tmp_path / "sort"
    assert ratchet("init", str(study), "--template", "sort").returncode == 0
    replay = proposals(
        tmp_path / "replay.jsonl",
        {
            "skip the insertion sort": ("insertion_sort(result, 0, len(result))", "pass"),
            "forget the rest of the left half": ("    out.extend(left[i:])\n", ""),
            "refuse pairs": ('    """A new list holding ``values`` in ascending order."""\n',
                             "    if len(values) == 2:\n        raise ValueError('pairs')\n"),
        },
    )  # fmt: skip
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "3",
                   "--proposer", "replay", "--replay", str(replay))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--tag", "t", "--json").stdout)
    assert [r["status"] for r in rows] == ["baseline", "rejected", "rejected", "rejected"]
    baseline = rows[0]
    assert len(baseline["samples"]) == 3  # noise-aware: the baseline is timed three times
    assert all(math.isfinite(s) and s > 0 for s in baseline["samples"])
    assert baseline["metric"] == sum(baseline["samples"]) / 3
    assert rows[1]["reason"].endswith("wrong: sort([1, 0]) returned [1, 0]")
    assert rows[2]["reason"].endswith("wrong: sort([5, 4, 3, 2, 1, 0]) returned [0, 1, 2]")
    assert rows[3]["reason"].endswith("wrong: sort([1, 0]) raised ValueError: pairs")
    assert all(r["metric"] is None for r in rows[1:])


def test_a_mutation_is_timed_until_the_rule_decides(tmp_path: Path) -> None:
    """One mutate experiment: CUTOFF changes, and the ledger holds the samples it took."""
    study = tmp_path / "sort"
    assert ratchet("init", str(study), "--template", "sort").returncode == 0
    done = ratchet("run", str(study), "--tag", "t", "--max-experiments", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(ratchet("log", str(study), "--tag", "t", "--json").stdout)
    tried = [r for r in rows if r["status"] in ("keep", "discard")]
    assert len(tried) == 1 and tried[0]["description"].startswith("CUTOFF 6 → ")
    assert 1 <= len(tried[0]["samples"]) <= 20  # [decision] max_samples
