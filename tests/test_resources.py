"""Worker slots: ``[resources]``, what the machine has, and a real phase pinned to its slot.

Detection runs the real code against a fake ``nvidia-smi`` first on PATH (this
machine has no GPU); the pinning tests run real experiments through the real
``Executor`` at every sandbox level and read back what the candidate saw.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_repo

from ratchet.errors import ConfigError, SandboxError
from ratchet.execute.factory import make_executor
from ratchet.execute.phases import Candidate, Executor
from ratchet.execute.resources import Machine, Slot, detect_gpus, plan_slots
from ratchet.execute.sandbox import check_available
from ratchet.study import Study, load_study

TOML = """\
[study]
name = "slots"

[files]
editable = ["{editable}"]
protected = [{protected}]

[run]
command = '''{command}'''
budget = 60
grace = 1
sandbox = "{sandbox}"
{run}
{evaluate}
[metric]
name = "score"

[resources]
{resources}
"""

# What the candidate saw: its CPUs, its child's and grandchild's, and the slot's variables.
PROBE = """\
import json, os, subprocess, sys
names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
grandchild = subprocess.run(
    ["sh", "-c", "python -c 'import os; print(sorted(os.sched_getaffinity(0)))' &  wait"],
    capture_output=True, text=True,
).stdout.strip()
seen = {
    "cpus": sorted(os.sched_getaffinity(0)),
    "grandchild": json.loads(grandchild),
    "env": {n: os.environ.get(n) for n in names},
}
print("seen: " + json.dumps(seen))
print("score: 1")
"""


def _bwrap_problem() -> str:
    try:
        check_available("bwrap")
    except SandboxError as error:
        return str(error)
    return ""


def write_study(
    root: Path, *, resources: str = "", sandbox: str = "process", evaluate: str = ""
) -> Path:
    """A committed study repository running the probe; with ``evaluate``, the sealed
    evaluate phase runs it instead (the probe then protected, the run phase ``true``)."""
    section = ""
    if evaluate:
        section = f"[evaluate]\ncommand = '''{evaluate}'''\nbudget = 60\ninputs = []\n"
    toml = TOML.format(
        command="true" if evaluate else "python probe.py",
        editable="x.py" if evaluate else "probe.py",
        protected='"probe.py"' if evaluate else "",
        sandbox=sandbox,
        run="",
        evaluate=section,
        resources=resources,
    )
    files = {"ratchet.toml": toml, "program.md": "Probe.\n", "probe.py": PROBE, "x.py": ""}
    return make_repo(root, files)


def checkout(repo: Path) -> tuple[Study, Candidate]:
    study = load_study(repo)
    worktree = repo / ".ratchet" / "worktrees" / "t"
    git(repo, "worktree", "add", "-q", "--detach", str(worktree))
    return study, Candidate(worktree, repo / ".ratchet" / "logs" / "1")


def seen(text: str) -> dict:
    line = next(x for x in text.splitlines() if x.startswith("seen: "))
    return json.loads(line.removeprefix("seen: "))


@pytest.fixture
def outside() -> Iterator[Path]:
    """Outside /tmp: bwrap's private /tmp would hide a study under pytest's tmp_path."""
    parent = Path("/var/tmp")
    if not parent.is_dir() or os.path.realpath(parent).startswith("/tmp"):
        pytest.skip("needs a writable /var/tmp outside /tmp")
    root = Path(tempfile.mkdtemp(prefix="ratchet-slots-test-", dir=parent))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


# --- [resources] ---------------------------------------------------------------------------


def test_resources_are_read_from_the_study(tmp_path: Path) -> None:
    repo = write_study(tmp_path / "s", resources="cpus = 2\ngpus = 1\nmemory_mb = 4000")
    spec = load_study(repo).resources
    assert (spec.cpus, spec.gpus, spec.memory_mb) == (2, 1, 4000.0)


def test_without_resources_nothing_is_restricted(tmp_path: Path) -> None:
    spec = load_study(write_study(tmp_path / "s")).resources
    assert (spec.cpus, spec.gpus, spec.memory_mb) == (None, 0, None)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("cpus = 0", "[resources] cpus = 0 is not allowed — give a whole number of CPUs"),
        ("cpus = 1.5", "[resources] cpus = 1.5 is not allowed"),
        ("gpus = -1", "[resources] gpus = -1 is not allowed — give a whole number of GPUs"),
        ("memory_mb = 0", "[resources] memory_mb = 0 is not allowed"),
        ("disk_mb = 10", "unknown key [resources] disk_mb"),
    ],
)
def test_bad_resources_are_one_sentence(tmp_path: Path, line: str, words: str) -> None:
    repo = write_study(tmp_path / "s", resources=line)
    with pytest.raises(ConfigError) as caught:
        load_study(repo)
    message = str(caught.value)
    assert words in message
    assert "ratchet.toml" in message and "\n" not in message


# --- detecting the machine --------------------------------------------------------------------


def fake_nvidia_smi(bindir: Path, output: str, code: int = 0) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {code}\n")
    script.chmod(0o755)


def test_gpus_are_found_with_nvidia_smi(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", "0, 81559 MiB\\n1, 81559 MiB\\n2, 81559 MiB\\n")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    assert detect_gpus({"PATH": path}) == ("0", "1", "2")


def test_cuda_visible_devices_set_by_the_user_is_what_ratchet_shares(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", "0, 1 MiB\\n1, 1 MiB\\n2, 1 MiB\\n3, 1 MiB\\n")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    assert detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "2,3"}) == ("2", "3")
    assert detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": ""}) == ()
    assert detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "-1"}) == ()
    assert detect_gpus({"PATH": path, "CUDA_VISIBLE_DEVICES": "1,-1,2"}) == ("1",)


def test_a_failing_nvidia_smi_means_no_gpus(tmp_path: Path) -> None:
    fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed\\n", code=9)
    path = f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin"
    if Path("/proc/driver/nvidia/gpus").is_dir():
        pytest.skip("this machine has an NVIDIA driver")
    assert detect_gpus({"PATH": path}) == ()


# --- planning the slots ----------------------------------------------------------------------

EIGHT = Machine(cpus=tuple(range(8)), gpus=("0", "1", "2", "3"), memory_mb=64_000)


def study_with(tmp_path: Path, resources: str) -> Study:
    return load_study(write_study(tmp_path / "s", resources=resources))


def test_auto_gives_each_worker_its_own_cpus(tmp_path: Path) -> None:
    slots = plan_slots(study_with(tmp_path, "cpus = 3"), None, EIGHT)
    assert [s.cpus for s in slots] == [(0, 1, 2), (3, 4, 5)]
    assert [s.name for s in slots] == ["w0", "w1"]


def test_auto_is_one_experiment_per_gpu(tmp_path: Path) -> None:
    slots = plan_slots(study_with(tmp_path, "cpus = 2\ngpus = 1"), None, EIGHT)
    assert [(s.cpus, s.gpus) for s in slots] == [
        ((0, 1), ("0",)),
        ((2, 3), ("1",)),
        ((4, 5), ("2",)),
        ((6, 7), ("3",)),
    ]
    assert slots[3].environ() == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "3",
    }


def test_memory_bounds_auto_and_caps_each_slot(tmp_path: Path) -> None:
    slots = plan_slots(study_with(tmp_path, "memory_mb = 20000"), None, EIGHT)
    assert len(slots) == 3
    assert {s.memory_mb for s in slots} == {20000.0}


def test_without_resources_workers_share_the_machine(tmp_path: Path) -> None:
    study = study_with(tmp_path, "")
    assert len(plan_slots(study, None, EIGHT)) == 8  # auto: one per CPU
    slots = plan_slots(study, 20, EIGHT)  # a sleep-bound study may want more than CPUs
    assert len(slots) == 20
    assert all(s.cpus == () and s.gpus == () and s.environ() == {} for s in slots)


@pytest.mark.parametrize(
    ("resources", "workers", "words"),
    [
        ("cpus = 3", 3, "3 workers need 9 CPUs (3 each, 8 usable)"),
        ("gpus = 1", 5, "5 workers need 5 GPUs (1 each, 4 found)"),
        ("memory_mb = 30000", 3, "3 workers need 90000 MB (30000 each, 64000 MB here)"),
    ],
)
def test_workers_that_do_not_fit_are_one_sentence(
    tmp_path: Path, resources: str, workers: int, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_slots(study_with(tmp_path, resources), workers, EIGHT)
    message = str(caught.value)
    assert words in message
    assert "use at most" in message and "--workers auto" in message and "\n" not in message


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ("cpus = 9", "cpus = 9 but this machine lets Ratchet use 8 CPUs"),
        ("gpus = 1", "gpus = 1 but 0 GPUs found"),
    ],
)
def test_an_experiment_bigger_than_the_machine_is_one_sentence(
    tmp_path: Path, resources: str, words: str
) -> None:
    machine = Machine(cpus=tuple(range(8)), gpus=(), memory_mb=64_000)
    with pytest.raises(ConfigError, match="lower"):
        plan_slots(study_with(tmp_path, resources), None, machine)
    with pytest.raises(ConfigError) as caught:
        plan_slots(study_with(tmp_path / "again", resources), 1, machine)
    assert words in str(caught.value)


def test_the_real_machine_is_detected(tmp_path: Path) -> None:
    slots = plan_slots(study_with(tmp_path, "cpus = 1"), None)
    assert sorted(c for s in slots for c in s.cpus) == sorted(os.sched_getaffinity(0))


# --- a real phase in its slot -------------------------------------------------------------


def run_in_slot(study: Study, candidate: Candidate, slot: Slot) -> dict:
    pinned = {n: (candidate.study_dir / n).read_bytes() for n in study.protected_files()}
    executor = make_executor(study, pinned=pinned, slot=slot)
    assert isinstance(executor, Executor)
    m = executor.measure(candidate)
    assert m.status == "ok", m.reason
    return seen("".join(p.result.tail for p in m.phases))


LAST_CPU = max(os.sched_getaffinity(0))
SLOT = Slot(index=1, cpus=(LAST_CPU,), gpus=("7",))
EXPECTED_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "7",
}


@pytest.mark.parametrize("sandbox", ["none", "process", "bwrap"])
def test_every_process_of_the_run_phase_is_pinned_to_its_slot(
    outside: Path, sandbox: str
) -> None:
    if sandbox == "bwrap" and _bwrap_problem():
        pytest.skip(f"bwrap is not usable here: {_bwrap_problem()}")
    study, candidate = checkout(write_study(outside / "s", sandbox=sandbox))
    got = run_in_slot(study, candidate, SLOT)
    assert got["cpus"] == [LAST_CPU]
    assert got["grandchild"] == [LAST_CPU]
    assert got["env"] == EXPECTED_ENV


def test_the_sealed_evaluate_phase_runs_in_the_slot_too(tmp_path: Path) -> None:
    study, candidate = checkout(write_study(tmp_path / "s", evaluate="python probe.py"))
    got = run_in_slot(study, candidate, SLOT)
    assert got["cpus"] == [LAST_CPU] and got["env"] == EXPECTED_ENV


def test_without_a_slot_nothing_is_pinned_or_set(tmp_path: Path) -> None:
    study, candidate = checkout(write_study(tmp_path / "s"))
    got = run_in_slot(study, candidate, Slot(0))
    assert got["cpus"] == sorted(os.sched_getaffinity(0))
    assert got["env"]["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS")


def test_the_slots_memory_caps_the_run(tmp_path: Path) -> None:
    repo = write_study(tmp_path / "s")
    (repo / "probe.py").write_text("block = bytearray(900_000_000)\nprint('score: 1')\n")
    git(repo, "commit", "-q", "-am", "hog")
    study, candidate = checkout(repo)
    pinned = {n: (candidate.study_dir / n).read_bytes() for n in study.protected_files()}
    executor = make_executor(study, pinned=pinned, slot=Slot(0, memory_mb=300))
    m = executor.measure(candidate)
    assert m.status == "crash"
    assert "300 MB memory limit ([run] max_memory_mb)" in m.reason


def test_the_nanogpt_study_runs_one_experiment_per_gpu_as_its_readme_says(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "examples" / "nanogpt"
    target = tmp_path / "nanogpt"
    shutil.copytree(example, target)
    toml = (target / "ratchet.toml").read_text()
    head, tail = toml.split("Uncomment:\n")
    uncommented = "\n".join(line.removeprefix("# ") for line in tail.splitlines())
    (target / "ratchet.toml").write_text(head + "\n" + uncommented + "\n")
    study = load_study(target)
    machine = Machine(cpus=tuple(range(32)), gpus=("0", "1", "2", "3"), memory_mb=256_000)
    slots = plan_slots(study, None, machine)
    assert [s.gpus for s in slots] == [("0",), ("1",), ("2",), ("3",)]
    assert slots[2].cpus == tuple(range(16, 24))
    assert slots[2].environ()["CUDA_VISIBLE_DEVICES"] == "2"
    assert slots[2].environ()["OMP_NUM_THREADS"] == "8"
