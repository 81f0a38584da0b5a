"""Captured output: capped per experiment, keeping its beginning and its end (``ratchet show``).

A study whose program prints far more than ``[run] log_cap_mb`` and then
fails must still show why it failed, and an experiment of several samples
must not write the cap once per sample.
"""

from __future__ import annotations

from pathlib import Path

from conftest import FAST_TOML, make_repo, ratchet

# 3 MB of numbered lines, then what decides the run: a metric line or a traceback.
FLOOD = """\
print("starting up")
for i in range(300_000):
    print(f"line {i:06d}")
{end}
"""


def _flooding_study(tmp_path: Path, end: str, samples: int = 1) -> Path:
    toml = (
        FAST_TOML.replace('editable = ["value.txt"]', 'editable = ["value.txt", "flood.py"]')
        .replace('command = "cat value.txt"', 'command = "python flood.py"')
        .replace("grace = 1", "grace = 1\nlog_cap_mb = 1")
        .replace('rule = "strict"', f'rule = "noise-aware"\nbaseline_samples = {samples}')
        .replace('kind = "replay"', 'kind = "mutate"')
    )
    files = {
        "ratchet.toml": toml,
        "program.md": "x\n",
        "value.txt": "5\n",
        "check.sh": "x\n",
        "flood.py": FLOOD.replace("{end}", end),
    }
    return make_repo(tmp_path / "study", files)


def _bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_a_flood_then_a_traceback_keeps_the_traceback_under_the_cap(tmp_path: Path) -> None:
    root = _flooding_study(tmp_path, 'raise RuntimeError("out of memory at step 299999")')
    done = ratchet("run", str(root), "--max-experiments", "0")
    assert done.returncode == 1 and "RuntimeError: out of memory" in done.stderr
    log = (root / ".ratchet" / "logs" / "1" / "run.log").read_text()
    assert len(log.encode()) <= 1_000_000
    assert log.startswith("starting up\nline 000000\n")
    assert "bytes omitted" in log and "Traceback (most recent call last)" in log
    assert log.endswith("RuntimeError: out of memory at step 299999\n")


def test_show_log_tail_prints_the_last_lines_of_each_log(tmp_path: Path) -> None:
    root = _flooding_study(tmp_path, 'raise RuntimeError("out of memory at step 299999")')
    assert ratchet("run", str(root), "--max-experiments", "0").returncode == 1
    done = ratchet("show", "1", str(root), "--log", "--tail", "3")
    assert done.returncode == 0, done.stderr
    after = done.stdout.partition("--- run.log\n")[2].splitlines()
    assert after[-1] == "RuntimeError: out of memory at step 299999" and len(after) == 3
    assert "starting up" not in done.stdout and "line 000000" not in done.stdout
    for bad in ("0", "-2", "x"):
        refused = ratchet("show", "1", str(root), "--log", "--tail", bad)
        assert refused.returncode == 2 and "--tail" in refused.stderr
    alone = ratchet("show", "1", str(root), "--tail", "3")
    assert alone.returncode == 2 and "--tail goes with --log" in alone.stderr


def test_the_cap_holds_for_all_samples_of_an_experiment_together(tmp_path: Path) -> None:
    root = _flooding_study(tmp_path, 'print("score: 5")', samples=2)
    done = ratchet("run", str(root), "--max-experiments", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    logs = root / ".ratchet" / "logs" / "1"
    first, second = logs / "run.log", logs / "seed-1" / "run.log"
    assert _bytes(logs) <= 1_000_000
    for log in (first, second):  # each sample keeps its beginning and its metric line
        text = log.read_text()
        assert text.startswith("starting up\n") and text.endswith("line 299999\nscore: 5\n")
        assert "bytes omitted" in text
