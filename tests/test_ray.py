"""The Ray backend on a real two-node Ray cluster on this machine (loopback only).

One cluster for the whole module (it takes seconds to start): a head that runs
nothing (no CPUs: the driver and the mailbox live there) and two worker nodes.
Select these tests with ``-m ray``.
"""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PYTHON, git, make_repo

from ratchet import RunOptions, load_study, run_study
from ratchet.decide.judge import StrictJudge
from ratchet.errors import ConfigError, RatchetError
from ratchet.execute.factory import make_executor
from ratchet.execute.phases import Candidate, Executor
from ratchet.execute.proctree import ppid
from ratchet.observer import Observer
from ratchet.proposers import ReplayProposer
from ratchet.store.ledger import Ledger

pytestmark = pytest.mark.ray
# Read by Ray when it is imported: without it Ray advertises the machine's network address
# even for a cluster on 127.0.0.1. Tests and CI stay on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray")

from ratchet.execute.ray_backend import (  # noqa: E402
    INSTALL_HINT,
    WORKER_LOST,
    RayExecutor,
    unplaceable,
)

STUDY_TOML = """\
[study]
name = "rayed"

[files]
editable = ["train.py"]
protected = ["score.py"]

[run]
command = "python train.py"
budget = {budget}
grace = 1
sandbox = "process"

[evaluate]
command = "python score.py"
budget = 10
inputs = ["out.txt"]

[execute]
backend = "ray"

[resources]
cpus = 1

[metric]
name = "score"
goal = "minimize"

[decision]
rule = "strict"
"""

# The run phase writes out.txt (the value the sealed evaluator scores) and says where it ran.
TRAIN = """\
import os
VALUE = 5
print("ran in", os.getcwd(), flush=True)
open("out.txt", "w").write(str(VALUE))
"""

SCORE = """\
print("score:", float(open("out.txt").read()) * 2)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Head (0 CPUs) plus two 2-CPU nodes, on 127.0.0.1, no dashboard, no usage stats."""
    from ray.cluster_utils import Cluster

    scratch = tmp_path_factory.mktemp("ray-scratch")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RATCHET_RAY_SCRATCH", str(scratch))
        env.delenv("RAY_ADDRESS", raising=False)
        # A lost node is noticed within about a second, not Ray's default tens of seconds.
        config = {"health_check_period_ms": 200, "health_check_failure_threshold": 3}
        made = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": config},
        )
        made.add_node(num_cpus=2)
        # Ray hands out GPU ids whether or not there is one; "fast" is a custom resource.
        made.add_node(num_cpus=2, num_gpus=1, resources={"fast": 1})
        made.wait_for_nodes()
        ray.init(address=made.address, log_to_driver=False)
        made.scratch = scratch
        try:
            yield made
        finally:
            ray.shutdown()
            made.shutdown()


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return _study(tmp_path, TRAIN)


def _study(tmp_path: Path, train: str, budget: float = 20) -> Path:
    return make_repo(
        tmp_path / "study",
        {
            "ratchet.toml": STUDY_TOML.format(budget=budget),
            "program.md": "Lower the score.\n",
            "train.py": train,
            "score.py": SCORE,
        },
    )


def _executor(root: Path, observer: Observer | None = None) -> RayExecutor:
    study = load_study(root)
    pinned = {name: (root / name).read_bytes() for name in study.protected_files()}
    executor = make_executor(study, pinned=pinned, observer=observer, budget=None)
    assert isinstance(executor, RayExecutor)
    return executor


def _candidate(root: Path, tmp_path: Path, exp_id: int = 1) -> Candidate:
    return Candidate(root, tmp_path / "logs" / str(exp_id), seed=0, commit="", exp_id=exp_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


class Recorder(Observer):
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.phases: list[str] = []
        self.messages: list[str] = []

    def output_line(self, exp_id: int, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def phase_started(self, exp_id: int, phase: str, budget: float) -> None:
        self.phases.append(phase)

    def message(self, text: str) -> None:
        self.messages.append(text)


# --- the cluster itself --------------------------------------------------------------


def test_the_cluster_stays_on_loopback(cluster) -> None:
    assert cluster.gcs_address.startswith("127.")
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 3
    assert all(n["NodeManagerAddress"].startswith("127.") for n in nodes)


# --- a study end to end ----------------------------------------------------------------


def test_a_study_runs_end_to_end_on_ray(cluster, study_dir: Path, tmp_path: Path) -> None:
    replay = tmp_path / "proposals.jsonl"
    proposals = [
        {"description": "three", "edits": {"train.py": TRAIN.replace("= 5", "= 3")}},
        {"description": "four", "edits": {"train.py": TRAIN.replace("= 5", "= 4")}},
    ]
    replay.write_text("".join(json.dumps(p) + "\n" for p in proposals))
    study = load_study(study_dir)
    executor = _executor(study_dir)
    run_study(study, ReplayProposer(replay), StrictJudge(), RunOptions(), executor=executor)
    ledger = Ledger(study_dir / ".ratchet" / "ledger.sqlite")
    try:
        exps = ledger.experiments()
    finally:
        ledger.close()
    assert [e.status for e in exps] == ["baseline", "keep", "discard"]
    assert [e.metric for e in exps] == [10.0, 6.0, 8.0]  # the sealed evaluator doubles out.txt
    assert git(study_dir, "show", "ratchet/main:train.py").count("VALUE = 3") == 1
    # Each sample ran on a node, in its scratch directory, and its logs came back.
    for exp in exps:
        run_log = (study_dir / ".ratchet" / "logs" / str(exp.id) / "run.log").read_text()
        assert f"ran in {cluster.scratch}" in run_log
        evaluate_log = study_dir / ".ratchet" / "logs" / str(exp.id) / "evaluate.log"
        assert "score:" in evaluate_log.read_text()
    assert list((cluster.scratch / "runs").iterdir()) == []  # sample directories removed


def test_one_content_addressed_copy_per_file_set(cluster, study_dir: Path, tmp_path: Path) -> None:
    executor = _executor(study_dir)
    first = executor.measure(_candidate(study_dir, tmp_path, 1))
    second = executor.measure(_candidate(study_dir, tmp_path, 2))
    assert (first.status, first.metric) == ("ok", 10.0)
    assert (second.status, second.metric) == ("ok", 10.0)
    (study_dir / "train.py").write_text(TRAIN.replace("= 5", "= 7"))
    third = executor.measure(_candidate(study_dir, tmp_path, 3))
    assert third.metric == 14.0
    cached = sorted(p.name for p in (cluster.scratch / "files").iterdir())
    assert len(executor._stored) == 2  # two file sets were put in the object store, once each
    assert set(executor._stored) <= set(cached)


def test_the_same_result_as_the_local_executor(cluster, study_dir: Path, tmp_path: Path) -> None:
    study = load_study(study_dir)
    pinned = {name: (study_dir / name).read_bytes() for name in study.protected_files()}
    local = Executor(study, pinned=pinned).measure(_candidate(study_dir, tmp_path, 1))
    remote = _executor(study_dir).measure(_candidate(study_dir, tmp_path, 2))
    assert (remote.status, remote.metric, remote.reason) == (local.status, local.metric, "")
    assert [p.name for p in remote.phases] == [p.name for p in local.phases] == ["run", "evaluate"]


def test_a_failing_run_is_a_crash_with_its_reason(cluster, tmp_path: Path) -> None:
    root = _study(tmp_path, "raise SystemExit('no data here')\n")
    m = _executor(root).measure(_candidate(root, tmp_path))
    assert m.status == "crash"
    assert "run phase exited with code 1: no data here" in m.reason
    assert "no data here" in (tmp_path / "logs" / "1" / "run.log").read_text()


PEEK = """\
import os, sys
open("out.txt", "w").write("1")
for path in sys.argv[1:]:
    try:
        open(path).read()
        print("read", path)
    except OSError as error:
        print("cannot read", path, error.strerror)
"""


def test_bwrap_on_a_node_hides_the_drivers_repository(cluster, tmp_path: Path) -> None:
    from ratchet.execute.sandbox import check_available

    try:
        check_available("bwrap")
    except RatchetError as problem:
        pytest.skip(f"bwrap is not usable here: {problem}")
    parent = Path("/var/tmp")  # not under /tmp, which bwrap replaces by a private one anyway
    if not parent.is_dir() or os.path.realpath(parent).startswith("/tmp"):
        pytest.skip("needs a writable /var/tmp outside /tmp")
    outside = Path(tempfile.mkdtemp(prefix="ratchet-ray-test-", dir=parent))
    outside.chmod(0o755)
    try:
        root = _study(outside, PEEK)
        secrets = [root / ".ratchet" / "ledger.sqlite", root / ".git" / "HEAD", root / "score.py"]
        secrets[0].parent.mkdir()
        secrets[0].write_text("private\n")
        toml = root / "ratchet.toml"
        text = toml.read_text().replace('sandbox = "process"', 'sandbox = "bwrap"')
        toml.write_text(
            text.replace('"python train.py"', f'"python train.py {" ".join(map(str, secrets))}"')
        )
        git(root, "commit", "-qam", "bwrap")
        m = _executor(root).measure(_candidate(root, tmp_path))
        assert (m.status, m.metric) == ("ok", 2.0)
        log = (tmp_path / "logs" / "1" / "run.log").read_text()
        for path in secrets:
            assert f"cannot read {path} No such file or directory" in log
    finally:
        shutil.rmtree(outside, ignore_errors=True)


# --- streaming, pruning, timeouts ------------------------------------------------------

SLOW = """\
import json, time
for i in range(4):
    print(f"tick {i}", flush=True)
    print(json.dumps({"progress": (i + 1) / 4, "loss": 1.0 / (i + 1)}), flush=True)
    time.sleep(0.4)
open("out.txt", "w").write("1")
"""


def test_lines_and_progress_stream_while_the_sample_runs(cluster, tmp_path: Path) -> None:
    root = _study(tmp_path, SLOW)
    recorder = Recorder()
    points = []

    def watch(point) -> None:
        points.append((time.monotonic(), point.progress))

    m = _executor(root, recorder).measure(_candidate(root, tmp_path), watch=watch)
    ended = time.monotonic()
    assert (m.status, m.metric) == ("ok", 2.0)
    ticks = [(at, line) for at, line in recorder.lines if line.startswith("tick")]
    assert [line for _, line in ticks] == ["tick 0", "tick 1", "tick 2", "tick 3"]
    assert ended - ticks[0][0] > 1.0  # the first line arrived while the run still had 1.2 s to go
    assert [p for _, p in points] == [0.25, 0.5, 0.75, 1.0]
    assert ended - points[0][0] > 1.0
    assert recorder.phases == ["run", "evaluate"]


TREE = """\
import json, os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(os.environ["PIDS"], "w").write(f"{os.getpid()} {child.pid}")
for i in range(600):
    print(json.dumps({"progress": i / 600}), flush=True)
    time.sleep(0.1)
"""


def test_pruning_stops_the_remote_tree(cluster, tmp_path: Path, monkeypatch) -> None:
    pids = tmp_path / "pids"
    root = _study(tmp_path, TREE.replace('os.environ["PIDS"]', repr(str(pids))), budget=60)

    def watch(point) -> str | None:
        return "pruned by the test" if point.progress >= 0.01 else None

    started = time.monotonic()
    m = _executor(root).measure(_candidate(root, tmp_path), watch=watch)
    assert (m.status, m.reason) == ("pruned", "pruned by the test")
    assert time.monotonic() - started < 30
    assert _gone([int(p) for p in pids.read_text().split()])


def test_a_timeout_kills_the_remote_tree(cluster, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = _study(tmp_path, TREE.replace('os.environ["PIDS"]', repr(str(pids))), budget=1.5)
    m = _executor(root).measure(_candidate(root, tmp_path))
    assert m.status == "timeout"
    assert "1.5 s budget" in m.reason
    assert _gone([int(p) for p in pids.read_text().split()])


def test_ctrl_c_on_the_driver_kills_the_remote_tree(cluster, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = _study(tmp_path, TREE.replace('os.environ["PIDS"]', repr(str(pids))), budget=60)
    executor = _executor(root)

    def interrupt() -> None:
        _wait_for(pids)
        _thread.interrupt_main()

    threading.Thread(target=interrupt).start()
    m = executor.measure(_candidate(root, tmp_path))
    assert m.status == "interrupted"
    assert _gone([int(p) for p in pids.read_text().split()])


def test_interrupt_from_another_thread_kills_the_remote_tree(cluster, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = _study(tmp_path, TREE.replace('os.environ["PIDS"]', repr(str(pids))), budget=60)
    executor = _executor(root)
    result: list = []
    thread = _measuring(executor, _candidate(root, tmp_path), result)
    _wait_for(pids)
    executor.interrupt()  # what the run does for each worker on Ctrl-C
    thread.join(30)
    (m,) = result
    assert m.status == "interrupted"
    assert _gone([int(p) for p in pids.read_text().split()])
    assert executor.measure(_candidate(root, tmp_path, 2)).status == "interrupted"


DRIVER = """\
import sys
from pathlib import Path
from ratchet import load_study
from ratchet.execute.factory import make_executor
from ratchet.execute.phases import Candidate
root = Path(sys.argv[1])
study = load_study(root)
pinned = {n: (root / n).read_bytes() for n in study.protected_files()}
executor = make_executor(study, pinned=pinned, observer=None, budget=None)
executor.measure(Candidate(root, root.parent / "logs", 0, "", 1))
"""


def test_a_killed_driver_leaves_no_experiment_behind(cluster, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    root = _study(tmp_path, TREE.replace('os.environ["PIDS"]', repr(str(pids))), budget=120)
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    driver = subprocess.Popen([PYTHON, "-c", DRIVER, str(root)], env=env)
    try:
        _wait_for(pids, timeout=60)
    finally:
        driver.kill()  # kill -9: no cleanup of its own
        driver.wait()
    assert _gone([int(p) for p in pids.read_text().split()], timeout=30)


# --- resources -------------------------------------------------------------------------

GPU = """import os
print("gpu:", os.environ.get("CUDA_VISIBLE_DEVICES"))
print("omp:", os.environ.get("OMP_NUM_THREADS"))
open("out.txt", "w").write("1")
"""


def test_a_sample_gets_the_gpu_ray_gave_it(cluster, tmp_path: Path) -> None:
    root = _study(tmp_path, GPU)
    toml = root / "ratchet.toml"
    toml.write_text(toml.read_text().replace("cpus = 1", "cpus = 1\ngpus = 1"))
    m = _executor(root).measure(_candidate(root, tmp_path))
    assert m.status == "ok"
    log = (tmp_path / "logs" / "1" / "run.log").read_text()
    assert "gpu: 0" in log
    assert "omp: 1" in log  # Ray tells thread pools the sample's CPUs ([resources] cpus = 1)


def test_custom_resources_place_the_sample(cluster, tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    toml = root / "ratchet.toml"
    text = toml.read_text()
    toml.write_text(text.replace("cpus = 1", "cpus = 1\ncustom = {fast = 1}"))
    assert _executor(root).measure(_candidate(root, tmp_path)).metric == 10.0
    toml.write_text(text.replace("cpus = 1", "cpus = 1\ncustom = {slow = 1}"))
    with pytest.raises(ConfigError, match=r"asks for 1 slow per experiment, and no node"):
        _executor(root)


def test_more_gpus_than_any_node_has_is_a_config_error(cluster, tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    toml = root / "ratchet.toml"
    toml.write_text(toml.read_text().replace("cpus = 1", "cpus = 1\ngpus = 2"))
    with pytest.raises(ConfigError, match=r"\[resources\] asks for 2 GPU per experiment"):
        _executor(root)


def test_what_no_node_can_hold_is_named() -> None:
    nodes = [
        {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}},
        {"Alive": True, "Resources": {"CPU": 1.0, "GPU": 2.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    assert unplaceable({"num_cpus": 4, "num_gpus": 1}, nodes) == ""
    assert unplaceable({"num_cpus": 8, "num_gpus": 0}, nodes) == "8 CPU"
    assert unplaceable({"num_cpus": 4, "num_gpus": 2}, nodes) == "4 CPU, 2 GPU at once"
    assert unplaceable({"num_cpus": 1, "num_gpus": 0, "memory": 5e9}, nodes) == (
        "5000 MB of memory"
    )


# --- lost workers and nodes ------------------------------------------------------------

# The first attempt blocks until the test kills its node or worker; a later one finishes.
BLOCK_ONCE = """\
import os, time
marks = {marks!r}
n = len(os.listdir(marks))
open(os.path.join(marks, str(n)), "w").write(str(os.getpid()))
if n < {block}:
    time.sleep(600)
open("out.txt", "w").write("4")
"""


def _measuring(executor: RayExecutor, candidate: Candidate, result: list) -> threading.Thread:
    """Measure in a thread (the test kills things meanwhile); the result or the error."""

    def measure() -> None:
        try:
            result.append(executor.measure(candidate))
        except BaseException as error:  # shown by the test's assertion
            result.append(error)

    thread = threading.Thread(target=measure)
    thread.start()
    return thread


def _ray_worker_of(pid: int) -> int:
    """The Ray worker the command runs under: command -> sh -> shepherd (a fork of the
    worker, so it looks like one) -> worker, whose parent is the raylet."""
    found = None
    current = ppid(str(pid))
    while current is not None and current > 1:
        argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
        if argv[0].startswith(b"ray::") or argv[1:2] and argv[1].endswith(b"default_worker.py"):
            found = current
        elif found is not None:
            return found
        current = ppid(str(current))
    raise AssertionError(f"no Ray worker above {pid}")


def test_a_lost_node_is_retried_elsewhere(cluster, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    root = _study(tmp_path, BLOCK_ONCE.format(marks=str(marks), block=1), budget=120)
    recorder = Recorder()
    executor = _executor(root, recorder)
    result: list = []
    thread = _measuring(executor, _candidate(root, tmp_path), result)
    pid = int(_wait_for(marks / "0"))
    worker = _ray_worker_of(pid)
    node = next(n for n in cluster.worker_nodes if _raylet_holds(n, worker))
    cluster.remove_node(node, allow_graceful=False)
    thread.join(90)
    assert not thread.is_alive()
    try:
        (m,) = result
        assert (m.status, m.metric) == ("ok", 8.0)
        lost = [text for text in recorder.messages if WORKER_LOST in text]
        assert lost and "retrying elsewhere" in lost[0]
        chain, current = [], pid
        while current and current > 1 and len(chain) < 6:
            argv = Path(f"/proc/{current}/cmdline").read_bytes()[:80] if _alive(current) else b"-"
            chain.append((current, argv))
            current = ppid(str(current))
        assert _gone([pid], timeout=30), chain  # the first attempt's command died with its node
    finally:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()


def _raylet_holds(node, worker: int) -> bool:
    """Whether ``worker`` is a descendant of ``node``'s raylet."""
    raylet = node.all_processes["raylet"][0].process.pid
    current: int | None = worker
    while current is not None and current > 1:
        if current == raylet:
            return True
        current = ppid(str(current))
    return False


def test_a_sample_lost_twice_is_a_worker_lost_crash(cluster, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    root = _study(tmp_path, BLOCK_ONCE.format(marks=str(marks), block=5), budget=120)
    executor = _executor(root)
    result: list = []
    thread = _measuring(executor, _candidate(root, tmp_path), result)
    commands = []
    for attempt in ("0", "1"):
        pid = int(_wait_for(marks / attempt))
        commands.append(pid)
        os.kill(_ray_worker_of(pid), signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive()
    (m,) = result
    assert m.status == "crash"
    assert m.reason.startswith(f"{WORKER_LOST}: ")
    assert "retried once" in m.reason
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1"]  # no third attempt
    assert _gone(commands)  # each shepherd killed its tree when its worker died


# --- configuration and a missing Ray ---------------------------------------------------


def test_backend_is_checked_in_the_config(tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    toml = root / "ratchet.toml"
    toml.write_text(toml.read_text().replace('backend = "ray"', 'backend = "slurm"'))
    with pytest.raises(ConfigError, match=r"\[execute\] backend = 'slurm' is not allowed"):
        load_study(root)
    toml.write_text(STUDY_TOML.format(budget=5).replace("cpus = 1", "custom = {fast = 0}"))
    with pytest.raises(ConfigError, match="custom resource 'fast' must be a positive amount"):
        load_study(root)


def test_without_ray_the_message_names_the_extra(tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "ray.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": str(shim)}
    done = subprocess.run(
        [PYTHON, "-m", "ratchet", "run", str(root), "--max-experiments", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert INSTALL_HINT in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (root / ".ratchet" / "ledger.sqlite").exists()  # nothing started


LOCAL = """\
import sys
from pathlib import Path
from ratchet import load_study
from ratchet.execute.factory import make_executor
from ratchet.execute.phases import Candidate
root = Path(sys.argv[1])
study = load_study(root)
pinned = {n: (root / n).read_bytes() for n in study.protected_files()}
executor = make_executor(study, pinned=pinned, observer=None, budget=None)
m = executor.measure(Candidate(root, root.parent / "logs", 0, "", 1))
import ray  # after Ratchet started it, as in `ratchet run`
print(m.status, m.metric, ray.get_runtime_context().gcs_address)
"""


def test_without_an_address_a_local_ray_is_started(tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RATCHET_RAY_SCRATCH"] = str(tmp_path / "scratch")
    done = subprocess.run(
        [PYTHON, "-c", LOCAL, str(root)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status, metric, gcs = done.stdout.split()
    assert (status, metric) == ("ok", "10.0")
    assert gcs.startswith("127.")  # a Ray started by Ratchet stays on loopback


def test_an_address_nobody_answers_on_is_one_sentence(tmp_path: Path) -> None:
    root = _study(tmp_path, TRAIN)
    toml = root / "ratchet.toml"
    text = toml.read_text()
    toml.write_text(text.replace('backend = "ray"', 'backend = "ray"\naddress = "127.0.0.1:1"'))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ratchet import load_study\n"
        "from ratchet.errors import ConfigError\n"
        "from ratchet.execute.factory import make_executor\n"
        "try:\n"
        "    make_executor(load_study(Path(sys.argv[1])), pinned={}, observer=None, budget=None)\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [PYTHON, "-c", code, str(root)], capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 30  # Ray alone would retry for minutes
    assert "cannot reach the Ray cluster at '127.0.0.1:1' (Connection refused)" in done.stdout
