"""The live terminal view, driven through its hooks and read back as the terminal got it."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

from conftest import make_repo
from rich.console import Console

from ratchet.cli.console import ConsoleObserver
from ratchet.models import Experiment
from ratchet.study import Study, load_study

TOML = """\
[study]
name = "view"

[files]
editable = ["value.txt"]

[run]
command = "cat value.txt"
budget = 60

[metric]
name = "score"
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def study(tmp_path: Path) -> Study:
    files = {"ratchet.toml": TOML, "program.md": "Lower.\n", "value.txt": "score: 5\n"}
    return load_study(make_repo(tmp_path / "s", files))


def terminal() -> tuple[Console, io.StringIO]:
    """A console that behaves like a terminal (so the live status is drawn) into a buffer."""
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160, color_system=None), out


def plain(out: io.StringIO) -> str:
    return ANSI.sub("", out.getvalue()).replace("\r", "\n")


def done(exp_id: int, status: str = "discard", description: str = "x") -> Experiment:
    metric = None if status == "crash" else 4.0
    return Experiment(exp_id, "t", None, None, status, metric=metric, description=description)


def rows(text: str) -> list[int]:
    """The ids of the printed rows, in the order printed."""
    return [int(m) for m in re.findall(r"^#(\d+) +[a-z]+ +score=", text, re.MULTILINE)]


def test_a_remeasurement_is_printed_after_the_experiment_that_caused_it(tmp_path: Path) -> None:
    console, out = terminal()
    with ConsoleObserver(console, study(tmp_path), []) as view:
        view.experiment_started(5, "lr up")
        view.phase_started(5, "run", 60)
        view.experiment_started(6, "re-measure the incumbent")  # taken while #5 is judged
        view.experiment_finished(done(6, "remeasure"))
        assert rows(plain(out)) == []  # #6 waits for #5
        view.experiment_finished(done(5, "keep"))
        assert rows(plain(out)) == [5, 6]


def test_a_long_description_is_cut_with_an_ellipsis(tmp_path: Path) -> None:
    console, out = terminal()
    long = "raise the learning rate " + "and more " * 20 + "END"
    with ConsoleObserver(console, study(tmp_path), []) as view:
        view.experiment_finished(done(2, description=long))
    line = next(x for x in plain(out).splitlines() if x.startswith("#2"))
    assert "END" not in line
    assert "raise the learning rate and more" in line
    assert line.rstrip().endswith("…")


def test_one_worker_keeps_its_single_status_line(tmp_path: Path) -> None:
    console, out = terminal()
    with ConsoleObserver(console, study(tmp_path), []) as view:
        view.experiment_started(3, "wider model")
        view.phase_started(3, "run", 60)
        time.sleep(0.3)  # output lines redraw at most 4 times a second
        view.output_line(3, "step 10 loss 2.3")
    text = plain(out)
    assert re.search(r"#3 wider model  run +0\.\d/60 s", text)
    assert "step 10 loss 2.3" in text
    assert " w0 " not in text and "idle" not in text


def drive_worker(view: ConsoleObserver, worker: str, ids: list[int], hold: threading.Event) -> None:
    """What the loop does on one worker's thread, for each of its experiments."""
    for exp_id in ids:
        view.assigned(worker, exp_id)
        view.experiment_started(exp_id, f"idea {exp_id} " + "with a long tail " * 6)
        view.phase_started(exp_id, "run", 60)
        for step in range(50):
            view.output_line(exp_id, f"step {step}")
        hold.wait(5)  # every worker holds an experiment in flight until the snapshot
        view.experiment_finished(done(exp_id, "keep" if exp_id % 3 == 0 else "discard"))
        view.assigned(worker, None)


def test_several_workers_get_one_line_each_and_rows_stay_in_id_order(tmp_path: Path) -> None:
    console, out = terminal()
    hold = threading.Event()
    plan = {"w0": [1, 4, 7], "w1": [2, 5, 8], "w2": [3, 6, 9]}
    with ConsoleObserver(console, study(tmp_path), [], refresh_per_second=20) as view:
        threads = [
            threading.Thread(target=drive_worker, args=(view, w, ids, hold))
            for w, ids in plan.items()
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(view.flights) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # a few timer frames with all three in flight
        snapshot = plain(out)
        hold.set()
        for thread in threads:
            thread.join()
    for worker, exp_id in (("w0", 1), ("w1", 2), ("w2", 3)):
        pattern = rf"^{worker} +#{exp_id} +idea {exp_id} with a long tail.*$"
        drawn = re.findall(pattern, snapshot, re.M)
        assert drawn, snapshot[-2000:]
        assert re.search(r"…  *run +\d+\.\d/60 s$", drawn[-1])  # the latest frame
    assert re.search(r"best score .*running 3", snapshot)
    text = plain(out)
    assert rows(text) == list(range(1, 10))  # each row once, in id order
    assert re.search(r"running 0 · keep 3 · discard 6", text)


def test_the_clock_moves_without_events(tmp_path: Path) -> None:
    console, out = terminal()
    with ConsoleObserver(console, study(tmp_path), [], workers=2, refresh_per_second=20) as view:
        view.assigned("w0", 1)
        view.assigned("w1", None)
        view.experiment_started(1, "quiet run")
        view.phase_started(1, "run", 60)
        time.sleep(0.8)  # the phase prints nothing meanwhile
    elapsed = [float(x) for x in re.findall(r"#1 +quiet run.*? (\d+\.\d)/60 s", plain(out))]
    assert len(set(elapsed)) >= 3, elapsed
    assert max(elapsed) >= 0.4
    assert re.search(r"^w1 +idle", plain(out), re.M)


def latest(out: io.StringIO, worker: str) -> str:
    """The worker's line in the latest frame drawn (after a few timer ticks)."""
    time.sleep(0.2)
    return re.findall(rf"^{worker} .*$", plain(out), re.M)[-1]


def test_a_remeasurement_inside_a_workers_trial_shows_then_gives_the_line_back(
    tmp_path: Path,
) -> None:
    console, out = terminal()
    with ConsoleObserver(console, study(tmp_path), [], refresh_per_second=20) as view:
        view.assigned("w1", None)
        view.assigned("w0", 5)
        view.experiment_started(5, "deeper")
        view.phase_started(5, "run", 60)
        assert re.match(r"w0 +#5 +deeper +run", latest(out, "w0"))
        view.assigned("w0", 6)  # the trial re-measures the incumbent before judging #5
        view.experiment_started(6, "re-measure")
        view.phase_started(6, "run", 60)
        assert re.match(r"w0 +#6 +re-measure +run", latest(out, "w0"))
        view.experiment_finished(done(6, "remeasure"))
        assert re.match(r"w0 +#5 +deeper +run", latest(out, "w0"))
        view.experiment_finished(done(5, "keep"))
        assert re.match(r"w0 +idle", latest(out, "w0"))
    assert rows(plain(out)) == [5, 6]
