"""The sandbox levels, with real processes: resource limits, the process-count stop, bwrap's walls.

Studies are real git repositories, candidates real git worktrees under
``.ratchet/worktrees``, phases run by the real ``Executor``. The bwrap tests
build their repositories outside /tmp: bwrap gives the command a private
/tmp, which alone would hide anything under pytest's ``tmp_path`` and prove
nothing about the repository being hidden.
"""

from __future__ import annotations

import os
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import git, make_repo, ratchet

import ratchet as ratchet_package
from ratchet.cli.main import main
from ratchet.errors import ConfigError, SandboxError
from ratchet.execute.phases import Candidate, Executor, Measurement
from ratchet.execute.sandbox import Limits, check_available, expand_path, rlimits
from ratchet.study import Study, load_study


def _bwrap_problem() -> str:
    try:
        check_available("bwrap")
    except SandboxError as error:
        return str(error)
    return ""


BWRAP_PROBLEM = _bwrap_problem()
needs_bwrap = pytest.mark.skipif(
    bool(BWRAP_PROBLEM), reason=f"bwrap is not usable here: {BWRAP_PROBLEM}"
)

TOML = """\
[study]
name = "walls"

[files]
editable = ["value.txt"]
protected = ["check.sh"]

[run]
command = '''{command}'''
budget = {budget}
grace = {grace}
{run}
{evaluate}
[metric]
name = "score"

[decision]
rule = "strict"
"""

FILES = {"program.md": "Lower the score.\n", "value.txt": "score: 5\n", "check.sh": "echo ok\n"}


def study_files(
    command: str,
    run: str = "",
    evaluate: str = "",
    budget: float = 60,
    grace: float = 1,
    inputs: str = '["saw.py"]',
    **files: str,
) -> dict[str, str]:
    """A study's files; ``files`` are named with ``_`` for ``.`` (``saw_py`` is ``saw.py``)."""
    section = f"[evaluate]\ncommand = '''{evaluate}'''\nbudget = 60\ninputs = {inputs}\n"
    section = section if evaluate else ""
    toml = TOML.format(command=command, run=run, evaluate=section, budget=budget, grace=grace)
    extra = {name.replace("_", "."): text for name, text in files.items()}
    return {"ratchet.toml": toml, **FILES, **extra}


def checkout(root: Path, files: dict[str, str]) -> tuple[Study, Candidate]:
    """A user repository with the study in ``study/``, and a candidate worktree of it."""
    repo = make_repo(root / "repo", {f"study/{name}": text for name, text in files.items()})
    study = load_study(repo / "study")
    worktree = repo / "study" / ".ratchet" / "worktrees" / "t"
    git(repo, "worktree", "add", "-q", "--detach", str(worktree))
    return study, Candidate(worktree / "study", repo / "study" / ".ratchet" / "logs" / "1")


def measure(study: Study, candidate: Candidate, **environ: str) -> Measurement:
    pinned = {n: (candidate.study_dir / n).read_bytes() for n in study.protected_files()}
    executor = Executor(study, pinned=pinned, environ={**os.environ, **environ})
    return executor.measure(candidate)


def output(m: Measurement) -> str:
    return "".join(phase.result.tail for phase in m.phases)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A scratch directory that is not under /tmp (see the module docstring)."""
    parent = Path("/var/tmp")
    if not parent.is_dir() or os.path.realpath(parent).startswith("/tmp"):
        pytest.skip("needs a writable /var/tmp outside /tmp")
    root = Path(tempfile.mkdtemp(prefix="ratchet-sandbox-test-", dir=parent))
    root.chmod(0o755)  # others may enter, as with most study directories (see _unsearchable)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def marked_processes(mark: str) -> list[int]:
    """Processes whose environment carries ``mark``: what is left of one command's tree."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and mark.encode() in Path(f"/proc/{name}/environ").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found


# --- level process: resource limits -----------------------------------------------------

WRITERS = {
    "python": "python -c \"open('big', 'wb').write(b'x' * 3_000_000)\"",
    "shell": "head -c 3000000 /dev/zero > big",
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_file_past_max_file_mb_crashes_the_run_naming_the_limit(
    tmp_path: Path, writer: str
) -> None:
    study, candidate = checkout(tmp_path, study_files(WRITERS[writer], "max_file_mb = 1"))
    m = measure(study, candidate)
    assert m.status == "crash"
    assert "1 MB file size limit ([run] max_file_mb)" in m.reason
    assert (candidate.study_dir / "big").stat().st_size <= 1_000_000


def test_too_many_open_files_crash_naming_the_limit(tmp_path: Path) -> None:
    opener = "python -c \"files = [open('value.txt') for _ in range(200)]\""
    study, candidate = checkout(tmp_path, study_files(opener, "max_open_files = 32"))
    m = measure(study, candidate)
    assert m.status == "crash"
    assert "Too many open files" in m.reason
    assert "32-open-files limit ([run] max_open_files)" in m.reason


def test_memory_past_max_memory_mb_cannot_be_allocated(tmp_path: Path) -> None:
    hog = 'python -c "block = bytearray(900_000_000); print(len(block))"'
    study, candidate = checkout(tmp_path, study_files(hog, "max_memory_mb = 300"))
    m = measure(study, candidate)
    assert m.status == "crash"
    assert "MemoryError" in m.tail
    assert "300 MB memory limit ([run] max_memory_mb)" in m.reason


def test_limits_leave_an_ordinary_run_alone(tmp_path: Path) -> None:
    limits = "max_memory_mb = 2000\nmax_file_mb = 10\nmax_processes = 64\nmax_open_files = 256"
    script = "for i in 1 2 3; do sh -c 'echo x > f$i' & done; wait; python -c 'print(\"score: 4\")'"
    study, candidate = checkout(tmp_path, study_files(script, limits))
    m = measure(study, candidate)
    assert (m.status, m.metric) == ("ok", 4.0)


FORK_BOMBS = {
    "shell": "bomb() { bomb | bomb & }; bomb; sleep 50",
    "python": (
        'python -c "import os, time\nwhile True:\n'
        '    if os.fork() == 0:\n        time.sleep(50)\n        os._exit(0)"'
    ),
}


@pytest.mark.parametrize("bomb", sorted(FORK_BOMBS))
def test_a_fork_bomb_is_killed_whole_and_reported(tmp_path: Path, bomb: str) -> None:
    study, candidate = checkout(tmp_path, study_files(FORK_BOMBS[bomb], "max_processes = 50"))
    mark = f"bomb-{uuid.uuid4().hex}"
    m = measure(study, candidate, SANDBOX_TEST_MARK=mark)
    assert m.status == "crash"
    assert "exceeded the 50-process limit ([run] max_processes)" in m.reason
    assert marked_processes(mark) == []


# --- level bwrap: no network, read-only files, the repository out of sight ---------------

CONNECT = """\
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    print("connected")
except OSError as error:
    print(f"connect failed: {error}")
print("score: 1")
"""


@needs_bwrap
@pytest.mark.parametrize(("level", "reaches"), [("process", True), ("bwrap", False)])
def test_bwrap_has_no_network_not_even_the_hosts_loopback(
    outside: Path, level: str, reaches: bool
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        files = study_files(f"python connect.py {port}", f'sandbox = "{level}"')
        study, candidate = checkout(outside, {**files, "connect.py": CONNECT})
        m = measure(study, candidate)
        listener.setblocking(False)
        try:
            listener.accept()[0].close()
            connected = True
        except BlockingIOError:
            connected = False
    assert m.status == "ok"
    assert connected is reaches
    assert ("connect failed" in output(m)) is not reaches


TOUCH = """\
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "a") as file:
            file.write("candidate was here\\n")
        print(f"wrote {path}")
    except OSError as error:
        print(f"cannot write {path}: {error.strerror}")
print("score: 1")
"""


@needs_bwrap
def test_bwrap_writes_only_inside_the_worktree(outside: Path) -> None:
    (outside / "elsewhere").mkdir()
    repo_file = outside / "repo" / "study" / "value.txt"
    targets = [repo_file, outside / "elsewhere" / "note.txt", "made.txt", "check.sh"]
    command = "python touch.py " + " ".join(map(str, targets))
    files = study_files(command, 'sandbox = "bwrap"', touch_py=TOUCH)
    study, candidate = checkout(outside, files)
    m = measure(study, candidate)
    assert m.status == "ok"
    assert repo_file.read_text() == "score: 5\n"
    assert not (outside / "elsewhere" / "note.txt").exists()
    assert (candidate.study_dir / "made.txt").read_text() == "candidate was here\n"
    assert (candidate.study_dir / "check.sh").read_text() == "echo ok\n"  # protected
    assert f"cannot write {repo_file}" in output(m)
    assert "cannot write check.sh: Read-only file system" in output(m)


PEEK = """\
import sys
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as file:
            print(f"read {path}: {len(file.read())} bytes")
    except OSError as error:
        print(f"cannot read {path}: {error.strerror}")
print("score: 1")
"""


@needs_bwrap
def test_bwrap_hides_the_repository_its_git_the_ledger_and_other_worktrees(
    outside: Path,
) -> None:
    repo = outside / "repo"
    secrets = [
        repo / "study" / ".ratchet" / "ledger.sqlite",
        repo / "notes.txt",  # an untracked file of the user's
        repo / ".git" / "HEAD",
        repo / "study" / ".ratchet" / "worktrees" / "other" / "value.txt",
    ]
    command = "python peek.py value.txt " + " ".join(map(str, secrets))
    study, candidate = checkout(outside, study_files(command, 'sandbox = "bwrap"', peek_py=PEEK))
    for path in secrets:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("private\n")
    m = measure(study, candidate)
    assert m.status == "ok"
    assert "read value.txt: 9 bytes" in output(m)
    for path in secrets:
        assert f"cannot read {path}: No such file or directory" in output(m)


SAW = """\
import os, sys
data = os.environ["SANDBOX_TEST_DATA"]
def look(name):
    path = os.path.join(data, name)
    if os.path.isdir(path):
        return sorted(os.listdir(path))
    return open(path).read() if os.path.exists(path) else None
print(sys.argv[1], "saw", {name: look(name) for name in ("train", "val", "key")})
if sys.argv[1] == "evaluate":
    print("score: 1")
"""
HIDE = """\
sandbox = "bwrap"
hide = ["${SANDBOX_TEST_DATA}/val", "$SANDBOX_TEST_DATA/key", "${SANDBOX_UNSET_VARIABLE}/val"]
"""


@needs_bwrap
def test_bwrap_hide_paths_are_empty_in_the_run_phase_and_there_for_evaluate(
    outside: Path,
) -> None:
    data = outside / "data"
    for name, text in (("train/train.bin", "t"), ("val/val.bin", "v"), ("key", "k")):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(text)
    files = study_files("python saw.py run", HIDE, "python saw.py evaluate", saw_py=SAW)
    study, candidate = checkout(outside, files)
    m = measure(study, candidate, SANDBOX_TEST_DATA=str(data))
    assert (m.status, m.metric) == ("ok", 1.0), m.reason + m.tail
    assert "run saw {'train': ['train.bin'], 'val': [], 'key': ''}" in output(m)
    assert "evaluate saw {'train': ['train.bin'], 'val': ['val.bin'], 'key': 'k'}" in output(m)


@needs_bwrap
def test_python_works_in_bwrap_when_its_environment_lives_in_the_hidden_repository(
    outside: Path,
) -> None:
    files = study_files("python -c \"import sys; print('score:', 3)\"", 'sandbox = "bwrap"')
    study, _ = checkout(outside, files)
    venv = outside / "repo" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    source = Path(ratchet_package.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), *site.getsitepackages()])}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "ratchet", "run", str(study.root)]
        + ["--max-experiments", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "score 3" in done.stdout


@needs_bwrap
def test_bwrap_leaves_the_command_its_grace_after_the_budget(outside: Path) -> None:
    command = "trap 'echo saved the checkpoint; exit 0' TERM; sleep 50 & wait"
    files = study_files(command, 'sandbox = "bwrap"', budget=1, grace=30)
    study, candidate = checkout(outside, files)
    m = measure(study, candidate)
    assert m.status == "timeout"
    assert "saved the checkpoint" in m.tail


@needs_bwrap
def test_a_hide_path_over_the_checkout_itself_is_a_config_error(outside: Path) -> None:
    run = f'sandbox = "bwrap"\nhide = ["{outside}"]'
    study, candidate = checkout(outside, study_files("cat value.txt", run))
    with pytest.raises(ConfigError, match="would hide the candidate's own checkout"):
        measure(study, candidate)


def test_an_unavailable_level_fails_at_start_with_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = study_files("cat value.txt", 'sandbox = "bwrap"')
    study = make_repo(tmp_path / "study", files)
    bin_dir = tmp_path / "bin"  # a PATH with git but without bwrap
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    env = {**os.environ, "PATH": str(bin_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "ratchet", "run", str(study), "--proposer", "mutate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bubblewrap" in lines[0] and "apt-get install" in lines[0]
    assert not (study / ".ratchet" / "logs").exists()  # nothing ran, not even the baseline
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["doctor", str(study)]) == 1
    assert 'BAD sandbox    sandbox = "bwrap" needs bubblewrap: apt-get install bubblewrap' in (
        capsys.readouterr().out
    )


def test_level_none_is_flagged_by_status_and_doctor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = make_repo(tmp_path / "study", study_files("cat value.txt", 'sandbox = "none"'))
    assert ratchet("run", str(study), "--max-experiments", "0").returncode == 0
    assert main(["status", str(study)]) == 0
    warning = 'warning: sandbox = "none": candidate code runs with your full permissions'
    assert warning in capsys.readouterr().out
    main(["doctor", str(study)])
    assert "ok  sandbox    none: no limits" in capsys.readouterr().out


# --- the configuration's meaning ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${DATA}/val", "/data/val"),
        ("$DATA/val", "/data/val"),
        ("~/.cache/x/val", "/home/me/.cache/x/val"),
        ("data/val", "/study/data/val"),
        ("${UNSET}/val", None),
        ("$EMPTY/val", None),
    ],
)
def test_hide_entries_expand_variables_and_home_and_skip_unset_ones(
    raw: str, expected: str | None
) -> None:
    environ = {"DATA": "/data", "HOME": "/home/me", "EMPTY": ""}
    path = expand_path(raw, environ, Path("/study"))
    assert path == (Path(expected) if expected else None)


def test_rlimits_are_capped_at_the_hard_limit_and_nproc_counts_the_machine() -> None:
    import resource

    limits = Limits(memory_bytes=10**9, file_bytes=10**6, processes=50, open_files=10**6)
    hard = {resource.RLIMIT_NOFILE: 4096}
    user = dict(rlimits(limits, hard=hard, root=False, tasks=300))
    assert user[resource.RLIMIT_NOFILE] == 4096
    assert user[resource.RLIMIT_DATA] == 10**9 and user[resource.RLIMIT_FSIZE] == 10**6
    assert user[resource.RLIMIT_NPROC] == 350
    assert resource.RLIMIT_NPROC not in dict(rlimits(limits, hard=hard, root=True, tasks=300))


@needs_bwrap
def test_bwrap_evaluate_phase_sees_neither_the_worktree_nor_the_repository(
    outside: Path,
) -> None:
    look = (
        "import os, sys\n"
        "for path in sys.argv[1:]:\n"
        "    seen = [f for _, _, files in os.walk(path) for f in files]\n"
        "    print(path, f'{len(seen)} files')\n"
        "print('score: 1')\n"
    )
    command = "python look.py {paths}"
    files = study_files("cat value.txt", 'sandbox = "bwrap"', command, look_py=look)
    repo_root = outside / "repo"
    worktree = repo_root / "study" / ".ratchet" / "worktrees" / "t"
    paths = f"{worktree} {worktree / 'study'} {repo_root}"
    files["ratchet.toml"] = files["ratchet.toml"].replace("{paths}", paths)
    files["ratchet.toml"] = files["ratchet.toml"].replace('["saw.py"]', '["look.py"]')
    study, candidate = checkout(outside, files)
    m = measure(study, candidate)
    assert (m.status, m.metric) == ("ok", 1.0), m.reason + m.tail
    evaluate = m.phases[-1].result.tail
    # bind mount points leave empty directories on the way; no file of either is there
    assert evaluate.count(" 0 files") == 3, evaluate


@needs_bwrap
def test_bwrap_keeps_ratchets_own_package_readable_inside_a_hidden_repository(
    tmp_path: Path,
) -> None:
    from ratchet.execute.sandbox import for_phase
    from ratchet.study import RunPhase

    package = Path(ratchet_package.__file__).resolve().parent
    # a study inside the checkout that holds Ratchet's source (an editable install)
    box = for_phase(
        RunPhase(command="x", budget=1, sandbox="bwrap"),
        study_root=package,
        study_dir=tmp_path,
        sealed_from=tmp_path,
    )
    hidden = [p for p in box.concealed if package.is_relative_to(p)]
    assert hidden == [] or package in box.readonly, (box.concealed, box.readonly)


@needs_bwrap
def test_bwrap_keeps_a_python_environment_under_tmp_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout and venv under /tmp (as a CI clone may be) must not vanish behind the
    sandbox's private /tmp: python in a study command would not be found."""
    from ratchet.execute import sandbox
    from ratchet.study import RunPhase

    (tmp_path / "repo" / ".git").mkdir(parents=True)  # the user's repository
    (tmp_path / "worktree").mkdir()  # the candidate's checkout
    (tmp_path / "worktree" / ".git").write_text("gitdir: elsewhere\n")
    venv = Path(tempfile.mkdtemp(dir="/tmp")).resolve()
    try:
        monkeypatch.setattr(sandbox, "_environment_dirs", lambda: (venv,))
        box = sandbox.for_phase(
            RunPhase(command="x", budget=1, sandbox="bwrap"),
            study_root=tmp_path / "repo",
            study_dir=tmp_path / "worktree",
        )
        assert venv in box.readonly, box.readonly
    finally:
        venv.rmdir()
