"""Local workers' phases in processes of their own: real processes, real phases."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conftest import FAST_TOML, make_repo

from ratchet import load_study
from ratchet.decide.prune import Pruner
from ratchet.execute.isolated import Pool
from ratchet.execute.phases import Candidate
from ratchet.execute.resources import Slot
from ratchet.metrics import ProgressPoint
from ratchet.observer import Observer

SLOW_TOML = FAST_TOML.replace('command = "cat value.txt"', 'command = "sh value.txt"')


class Lines(Observer):
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self.phases: list[tuple[int, str]] = []

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.phases.append((exp_id, phase))

    def output_line(self, exp_id: int, line: str) -> None:
        self.lines.append((exp_id, line))


def _pool(tmp_path: Path, script: str, observer: Observer, workers: int = 1) -> Pool:
    root = make_repo(tmp_path / "s", {
        "ratchet.toml": SLOW_TOML, "program.md": "x", "value.txt": script, "check.sh": "x",
    })  # fmt: skip
    study = load_study(root)
    pinned = {n: (root / n).read_bytes() for n in ("ratchet.toml", "program.md", "check.sh")}
    return Pool(study, pinned, observer, None, [Slot(k) for k in range(workers)])


def _candidate(tmp_path: Path, exp_id: int = 7) -> Candidate:
    return Candidate(tmp_path / "s", tmp_path / "logs" / str(exp_id), 0, "", exp_id)


def test_a_worker_process_measures_and_forwards_what_the_phase_prints(tmp_path: Path) -> None:
    observer = Lines()
    pool = _pool(tmp_path, "echo hello; echo score: 3\n", observer)
    try:
        m = pool.executors[0].measure(_candidate(tmp_path))
    finally:
        pool.close()
    assert (m.status, m.metric) == ("ok", 3.0)
    assert observer.phases == [(7, "run")]
    assert observer.lines == [(7, "hello"), (7, "score: 3")]
    assert (tmp_path / "logs" / "7" / "run.log").read_text() == "hello\nscore: 3\n"


def test_the_pruner_watches_the_run_inside_the_worker_process(tmp_path: Path) -> None:
    script = "".join(
        f'echo \'{{"progress": {p / 10}, "score": 30}}\'; sleep 0.05\n' for p in range(1, 10)
    ) + "sleep 30; echo score: 30\n"
    pool = _pool(tmp_path, script, Observer())
    curve = [ProgressPoint(p / 10, {"score": 10.0 - p}) for p in range(1, 11)]
    pruner = Pruner(curve, metric_name="score", goal="minimize", noise=0.1, min_progress=0.25)
    started = time.monotonic()
    try:
        m = pool.executors[0].measure(_candidate(tmp_path), watch=pruner.watch)
    finally:
        pool.close()
    assert m.status == "pruned" and "behind" in m.reason
    assert time.monotonic() - started < 20  # stopped, not run to its 30 s sleep


def test_a_worker_process_killed_mid_sample_is_a_crash_and_comes_back(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "echo started; sleep 30; echo score: 1\n", Observer())
    executor = pool.executors[0]
    process = pool.executors[0].process
    assert process is not None
    threading.Timer(1.0, process.kill).start()
    try:
        m = executor.measure(_candidate(tmp_path))
        assert m.status == "crash" and "worker process of w0 died" in m.reason
        (tmp_path / "s" / "value.txt").write_text("echo score: 2\n")
        again = executor.measure(_candidate(tmp_path, 8))  # a fresh worker process
    finally:
        pool.close()
    assert (again.status, again.metric) == ("ok", 2.0)


def test_two_worker_processes_run_at_once(tmp_path: Path) -> None:
    # each run counts the runs in flight while it sleeps: its metric
    script = "touch ../f.$$; sleep 2; echo score: $(ls ../f.* | wc -l); rm -f ../f.$$\n"
    pool = _pool(tmp_path, script, Observer(), workers=2)
    results: list[float | None] = []
    try:
        threads = [
            threading.Thread(
                target=lambda e=e, k=k: results.append(e.measure(_candidate(tmp_path, k)).metric)
            )
            for k, e in enumerate(pool.executors)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        pool.close()
    assert max(results, key=lambda v: v or 0) == 2.0  # they overlapped: not one after the other
