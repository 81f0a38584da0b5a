"""The evaluation harness: candidate calls in another process, the metric on a private channel.

Each test runs a real evaluator script in a real interpreter (as the
evaluate phase would), against a real candidate module, and reads what a
user would see: its output, its exit status, what came out of the report
socket (Ratchet's end, with the kernel's sender pids).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ratchet.execute.sealed import Reported, read_reports, receive

SOLVER = """\
import os, subprocess, sys, time

def add(a, b):
    return a + b

def echo(value):
    return value

def pair():
    return (1, "two")

def fail():
    raise ValueError("bad input: 7")

def a_set():
    return {1, 2}

def hang(pid_file):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pid_file, "w") as out:
        out.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)

def channel():
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    return {"env": os.environ.get("RATCHET_REPORT_FD"), "fds": fds}
"""


def evaluate(
    tmp_path: Path, body: str, report_fd: bool = False
) -> tuple[str, str, int, list[tuple[int | None, bytes]]]:
    """Run ``body`` as an evaluator next to solver.py; (stdout, stderr, status, records)."""
    (tmp_path / "solver.py").write_text(SOLVER)
    script = tmp_path / "evaluate.py"
    script.write_text("from ratchet.evaluation import *\nimport sys, time\n" + body)
    env = {k: v for k, v in os.environ.items() if k != "RATCHET_REPORT_FD"}
    env["PYTHONSAFEPATH"] = "1"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if report_fd:
        env["RATCHET_REPORT_FD"] = str(theirs.fileno())
    with ours, theirs:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(theirs.fileno(),) if report_fd else (),
        )
        records = receive(ours.fileno())
    return done.stdout, done.stderr, done.returncode, records


def test_calls_round_trip_as_json(tmp_path: Path) -> None:
    body = """\
solver = load_candidate("solver.py", timeout=20)
print(solver.add(2, 3), solver.add([1], [2]), solver.echo({"a": [1.5, None, True]}))
print(solver.pair())
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert status == 0, err
    assert out.splitlines() == ["5 [1, 2] {'a': [1.5, None, True]}", "[1, 'two']"]


def test_an_exception_in_the_candidate_comes_back_typed(tmp_path: Path) -> None:
    body = """\
solver = load_candidate("solver.py", timeout=20)
try:
    solver.fail()
except CandidateError as exc:
    print(exc.kind, exc.function, str(exc))
print(solver.add(1, 1))  # the worker lives on after the candidate's exception
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert status == 0, err
    assert out.splitlines() == ["ValueError fail ValueError: bad input: 7", "2"]


def test_arguments_and_results_that_are_not_json_are_refused(tmp_path: Path) -> None:
    body = """\
solver = load_candidate("solver.py", timeout=20)
try:
    solver.echo({1, 2})
except TypeError as exc:
    print("argument:", exc)
try:
    solver.a_set()
except CandidateError as exc:
    print("result:", exc.kind)
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert status == 0, err
    argument, result = out.splitlines()
    assert argument.startswith("argument: an argument to candidate.echo cannot cross as JSON")
    assert "set is not JSON serializable" in argument and "pass lists" in argument
    assert result == "result: TypeError"


def test_a_call_past_its_limit_kills_the_worker_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    body = f"""\
solver = load_candidate("solver.py", timeout=1.5)
started = time.monotonic()
try:
    solver.hang({str(pid_file)!r})
except CandidateTimeout as exc:
    print("timeout after", round(time.monotonic() - started), "s:", exc)
try:
    solver.add(1, 2)
except CandidateDied as exc:
    print("then:", exc)
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert status == 0, err
    first, then = out.splitlines()
    assert first == "timeout after 2 s: candidate.hang ran past its 1.5 s limit and was killed"
    assert then.startswith("then: cannot call add: killed after a call ran past 1.5 s")
    worker, child = map(int, pid_file.read_text().split())
    assert not _running(worker) and not _running(child)


def test_report_goes_to_the_channel_from_the_evaluator_alone(tmp_path: Path) -> None:
    body = 'print("score: -1")\nreport(score=2.5, seconds=0.25)\nreport(score=2.0)\n'
    out, err, status, channel = evaluate(tmp_path, body, report_fd=True)
    assert status == 0, err
    assert out == "score: -1\n"  # printed, but not a report
    assert [json.loads(data) for _, data in channel][0] == {"hello": 1}
    assert len({pid for pid, _ in channel}) == 1 and channel[0][0] != os.getpid()
    assert read_reports(channel) == Reported({"score": 2.0, "seconds": 0.25})


def test_report_outside_ratchet_prints_the_metric_lines(tmp_path: Path) -> None:
    out, err, status, _ = evaluate(tmp_path, "report(score=2.5)\n")
    assert (status, out) == (0, "score: 2.5\n"), err


def test_report_refuses_what_is_not_a_metric(tmp_path: Path) -> None:
    body = """\
for call in (lambda: report(score="1"), lambda: report(), lambda: report(score=True)):
    try:
        call()
    except (TypeError, ValueError) as exc:
        print(exc)
"""
    out, err, status, channel = evaluate(tmp_path, body, report_fd=True)
    assert status == 0, err
    assert out.splitlines() == [
        "report(): score must be a number, got str",
        "report() needs at least one name=value",
        "report(): score must be a number, got bool",
    ]
    assert read_reports(channel) == Reported({})


def test_the_worker_holds_neither_the_channel_nor_its_number(tmp_path: Path) -> None:
    body = """\
import os
solver = load_candidate("solver.py", timeout=20)
seen = solver.channel()
print(seen["env"], len(seen["fds"]))
"""
    out, err, status, channel = evaluate(tmp_path, body, report_fd=True)
    assert status == 0, err
    # stdin, stdout, stderr, the reply pipe, and the listing's own directory descriptor
    assert out.split() == ["None", "5"]
    assert read_reports(channel) == Reported({})


def test_a_candidate_that_fails_to_import_is_a_typed_error_at_load(tmp_path: Path) -> None:
    body = """\
open("broken.py", "w").write("import sys\\nsys.exit(4)\\n")
try:
    load_candidate("broken.py", timeout=20)
except CandidateError as exc:
    print(exc.kind)
try:
    load_candidate("missing.py")
except CandidateError as exc:
    print(exc)
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert status == 0, err
    assert out.splitlines() == [
        "SystemExit",
        "missing.py not found — list it in [evaluate] inputs so it is copied next to the"
        " evaluator",
    ]


def test_many_calls_in_a_row_stay_in_step(tmp_path: Path) -> None:
    body = """\
solver = load_candidate("solver.py", timeout=20)
for i in range(200):
    assert solver.add(i, 1) == i + 1
print("ok")
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert (status, out) == (0, "ok\n"), err


HELLO = (7, b'{"hello": 1}')
REPORT = b'{"report": {"score": 1}}'


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([(7, REPORT)], "written before the evaluator said hello"),
        ([HELLO, (8, b'{"hello": 1}')], "two processes claimed the report channel"),
        ([HELLO, (8, REPORT)], "did not come from the evaluator"),
        ([HELLO, (None, REPORT)], "did not come from the evaluator"),
        ([HELLO, (7, b"score: 1")], "malformed record"),
        ([HELLO, (7, b'{"report": {"score": "1"}}')], "is not a number"),
    ],
)
def test_records_not_from_the_evaluator_void_the_report(records: list, problem: str) -> None:
    reported = read_reports(records)
    assert reported is not None and reported.values == {}
    assert reported.problem is not None and problem in reported.problem


def test_no_hello_means_the_output_lines_count() -> None:
    assert read_reports([]) is None
    assert read_reports([HELLO, (7, REPORT)]) == Reported({"score": 1.0})


def _running(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True


def test_the_candidate_file_is_loaded_even_when_named_like_a_standard_module(
    tmp_path: Path,
) -> None:
    body = """\
open("json.py", "w").write("def dumps(value):\\n    return 'candidate'\\n")
print(load_candidate("json.py", timeout=20).dumps(1))
"""
    out, err, status, _ = evaluate(tmp_path, body)
    assert (status, out) == (0, "candidate\n"), err
