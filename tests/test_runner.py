"""The process runner, with real processes: exit codes, streaming, budgets, whole-tree kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ratchet.errors import ExperimentCrashed
from ratchet.execute import RunSpec, experiment_env, run_command

DAEMON = "(setsid sh -c '{trap}echo $$ > {pidfile}; exec sleep 30' </dev/null >/dev/null 2>&1 &)"

HELPER = """
import json, os, signal, sys
from pathlib import Path
from ratchet.execute import RunSpec, run_command

signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background

work = Path(sys.argv[1])
spec = RunSpec(sys.argv[2], work, dict(os.environ), float(sys.argv[3]), 0.5, work / "run.log")
result = run_command(spec)
print(json.dumps({"stop_reason": result.stop_reason, "returncode": result.returncode}))
"""


def make_spec(tmp_path: Path, command: str, **overrides: object) -> RunSpec:
    values: dict = dict(
        command=command,
        cwd=tmp_path,
        env=dict(os.environ),
        budget=5.0,
        grace=0.5,
        log_path=tmp_path / "logs" / "run.log",
    )
    values.update(overrides)
    return RunSpec(**values)


def daemon_snippet(pidfile: Path, ignore_term: bool = False) -> str:
    """A shell snippet starting a double-forked setsid daemon that writes its pid."""
    return DAEMON.format(trap='trap "" TERM; ' if ignore_term else "", pidfile=pidfile)


def wait_for_pid(path: Path, timeout: float = 60.0) -> int:
    end = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, not yet reaped) is not alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def gone_within(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize(
    ("command", "code"), [("true", 0), ("exit 3", 3), ("kill -9 $$", -9), ("kill -TERM $$", -15)]
)
def test_exit_codes(tmp_path: Path, command: str, code: int) -> None:
    result = run_command(make_spec(tmp_path, command))
    assert result.returncode == code
    assert not result.timed_out and result.stop_reason is None


def test_output_is_logged_and_lines_stream_in_order(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    spec = make_spec(tmp_path, "echo first; echo second >&2; sleep 0.5; echo third")
    result = run_command(spec, lambda line: seen.append((time.monotonic(), line)))
    assert [line for _, line in seen] == ["first", "second", "third"]
    assert seen[2][0] - seen[0][0] > 0.3  # "first" arrived while the command still ran
    assert spec.log_path.read_text() == "first\nsecond\nthird\n"
    assert result.tail == "first\nsecond\nthird\n"
    assert result.log_bytes == len("first\nsecond\nthird\n") and not result.truncated
    assert 0.5 <= result.duration_s < 3


def test_last_line_without_newline_and_crlf(tmp_path: Path) -> None:
    seen: list[str] = []
    run_command(make_spec(tmp_path, r"printf 'a\r\nmse: 1'"), seen.append)
    assert seen == ["a", "mse: 1"]


def test_stdin_is_empty(tmp_path: Path) -> None:
    result = run_command(make_spec(tmp_path, "cat; echo ok", budget=3.0))
    assert result.returncode == 0 and result.tail == "ok\n"


def test_timeout_kills_grandchild_that_ignores_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    command = f"sh -c \"trap '' TERM; echo \\$\\$ > {pidfile}; exec sleep 30\" & wait"
    start = time.monotonic()
    result = run_command(make_spec(tmp_path, command, budget=1.0, grace=0.5))
    wall = time.monotonic() - start
    assert result.timed_out and result.stop_reason is None
    assert 1.4 <= wall < 6
    assert 1.0 <= result.duration_s < 3
    assert not alive(wait_for_pid(pidfile, timeout=0))


def test_daemon_is_killed_when_command_exits_normally(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    command = f"{daemon_snippet(pidfile)}; while [ ! -s {pidfile} ]; do sleep 0.01; done; echo done"
    start = time.monotonic()
    result = run_command(make_spec(tmp_path, command))
    assert result.returncode == 0 and not result.timed_out
    assert time.monotonic() - start < 5  # killed, not waited for
    assert not alive(wait_for_pid(pidfile, timeout=0))


def test_daemon_ignoring_sigterm_is_killed_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    command = f"{daemon_snippet(pidfile, ignore_term=True)}; sleep 30"
    start = time.monotonic()
    result = run_command(make_spec(tmp_path, command, budget=1.0, grace=0.5))
    assert result.timed_out and 1.4 <= time.monotonic() - start < 6  # SIGTERM, grace, SIGKILL
    assert not alive(wait_for_pid(pidfile, timeout=0))


def test_output_flood_is_capped_and_the_run_goes_on(tmp_path: Path) -> None:
    cap = 1_000_000
    command = "yes \"$(printf '%0999d' 0)\" | head -n 30000; echo 'score: 1'"
    count = 0
    last = ""

    def on_line(line: str) -> None:
        nonlocal count, last
        count += 1
        last = line

    spec = make_spec(tmp_path, command, log_cap_bytes=cap, budget=20.0)
    result = run_command(spec, on_line)
    log = spec.log_path.read_bytes()
    assert result.returncode == 0 and result.truncated
    assert result.log_bytes == 30_000_000 + len("score: 1\n")
    assert cap - 1000 < len(log) < cap + 200
    head, marker, tail = log.partition(b"[ratchet: ")
    assert len(head) == cap // 2 and head.count(b"\n") == cap // 2 // 1000
    assert b"bytes omitted" in marker + tail and tail.endswith(b"0\nscore: 1\n")
    # Past the cap only lines that can carry the metric protocol reach on_line.
    assert cap // 1000 <= count < 2000 and last == "score: 1"
    assert result.tail.endswith("score: 1\n") and len(result.tail) == 4000


def test_a_capped_log_keeps_its_beginning_and_the_traceback_at_its_end(tmp_path: Path) -> None:
    program = tmp_path / "flood.py"
    program.write_text(
        "import sys\nprint('starting up')\nfor i in range(200_000): print(f'step {i:08d}')\n"
        "raise RuntimeError('the end of the run')\n"
    )
    spec = make_spec(tmp_path, f"{sys.executable} flood.py", log_cap_bytes=100_000)
    result = run_command(spec)
    log = spec.log_path.read_bytes()
    assert result.returncode == 1 and result.truncated and result.log_bytes > 2_500_000
    assert len(log) <= 100_200 and log.startswith(b"starting up\nstep 00000000\n")
    head, marker, tail = log.partition(b"\n[ratchet: ")  # the head ends mid-line: a newline
    marker, _, tail = (marker + tail).partition(b"]\n")
    omitted = result.log_bytes - len(head) - len(tail)
    assert len(head) == 50_000 and f"… {omitted} bytes omitted …".encode() in marker
    assert b"Traceback (most recent call last)" in tail
    assert tail.endswith(b"RuntimeError: the end of the run\n")
    assert tail.startswith(b"step ") and tail.index(b"\n") == len("step 00000000")


def test_a_large_cap_keeps_more_of_the_head_and_4_mb_of_the_end(tmp_path: Path) -> None:
    command = "yes 'line of output' | head -c 15000000; echo 'the last line'"
    spec = make_spec(tmp_path, command, log_cap_bytes=10_000_000, budget=20.0)
    result = run_command(spec)
    log = spec.log_path.read_bytes()
    head, _, rest = log.partition(b"[ratchet: ")
    assert result.truncated and len(head) == 6_000_000 and len(log) <= 10_000_200
    assert 3_999_000 < len(rest.partition(b"]\n")[2]) <= 4_000_000
    assert log.endswith(b"line of output\nthe last line\n")


def test_on_line_can_stop_the_run(tmp_path: Path) -> None:
    command = 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.05; done'
    start = time.monotonic()
    result = run_command(
        make_spec(tmp_path, command, budget=20.0),
        lambda line: "enough" if line == "line 3" else None,
    )
    assert result.stop_reason == "enough" and not result.timed_out
    assert result.returncode == -signal.SIGTERM
    assert time.monotonic() - start < 5


def test_on_line_error_propagates_and_stops_the_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "main.pid"

    def on_line(line: str) -> None:
        raise RuntimeError(line)

    with pytest.raises(RuntimeError, match="go"):
        run_command(make_spec(tmp_path, f"echo $$ > {pidfile}; echo go; sleep 30"), on_line)
    assert not alive(wait_for_pid(pidfile, timeout=0))


def test_sigterm_to_the_supervisor_stops_the_tree(tmp_path: Path) -> None:
    start = time.monotonic()
    result = run_command(make_spec(tmp_path, "kill -TERM $PPID; sleep 30", budget=20.0))
    assert result.returncode == -signal.SIGTERM and not result.timed_out
    assert time.monotonic() - start < 5


def test_terminal_signals_to_the_supervisor_are_ignored(tmp_path: Path) -> None:
    result = run_command(make_spec(tmp_path, "kill -INT $PPID; kill -HUP $PPID; echo ok"))
    assert result.returncode == 0 and result.tail == "ok\n"


def test_supervisor_killed_is_reported_not_raised(tmp_path: Path) -> None:
    result = run_command(make_spec(tmp_path, "kill -KILL $PPID; echo orphan; sleep 30"))
    assert result.lost == (
        "the process supervising it was killed; every process it started was killed too"
    )
    assert result.returncode is None and result.duration_s < 20


def test_experiment_environment_reaches_the_child(tmp_path: Path) -> None:
    environ = {"PATH": os.environ["PATH"], "OPENAI_API_KEY": "sk-secret"}
    env = experiment_env(environ, seed=7, budget=2.5, deadline=1e9)
    command = 'echo "$RATCHET_SEED $RATCHET_BUDGET $RATCHET_DEADLINE ${OPENAI_API_KEY-unset}"'
    result = run_command(make_spec(tmp_path, command, env=env))
    assert result.tail == "7 2.5 1000000000.0 unset\n"


def test_missing_cwd_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExperimentCrashed, match="could not start"):
        run_command(make_spec(tmp_path, "true", cwd=tmp_path / "missing"))


def my_children() -> set[int]:
    """Children of this process, zombies included (other tests' leftovers are fine)."""
    found = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == os.getpid():
            found.add(int(name))
    return found


def test_no_file_descriptors_or_children_are_left(tmp_path: Path) -> None:
    fds, children = set(os.listdir("/proc/self/fd")), my_children()
    for _ in range(3):
        run_command(make_spec(tmp_path, "echo x"))
    assert set(os.listdir("/proc/self/fd")) == fds
    assert my_children() <= children


def start_helper(tmp_path: Path, command: str, budget: float) -> subprocess.Popen[str]:
    script = tmp_path / "helper.py"
    script.write_text(HELPER)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), command, str(budget)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_nothing_survives_sigkill_of_ratchet(tmp_path: Path) -> None:
    daemon_pid, main_pid = tmp_path / "daemon.pid", tmp_path / "main.pid"
    command = f"echo $$ > {main_pid}; {daemon_snippet(daemon_pid, ignore_term=True)}; sleep 30"
    helper = start_helper(tmp_path, command, budget=60)
    try:
        daemon = wait_for_pid(daemon_pid)
        main = wait_for_pid(main_pid)
    finally:
        helper.kill()
        helper.communicate()
    assert gone_within(daemon, 5) and gone_within(main, 5)


def test_ctrl_c_returns_interrupted_and_leaves_nothing(tmp_path: Path) -> None:
    daemon_pid, main_pid = tmp_path / "daemon.pid", tmp_path / "main.pid"
    command = f"echo $$ > {main_pid}; {daemon_snippet(daemon_pid)}; sleep 120"
    helper = start_helper(tmp_path, command, budget=300)
    try:
        daemon = wait_for_pid(daemon_pid)
        main = wait_for_pid(main_pid)
        helper.send_signal(signal.SIGINT)
        # Far less than the 120 s the command would sleep: a slow machine still passes.
        out, _ = helper.communicate(timeout=60)
    finally:
        helper.kill()
        helper.communicate()
    assert helper.returncode == 0
    assert json.loads(out)["stop_reason"] == "interrupted"
    assert not alive(daemon) and not alive(main)
