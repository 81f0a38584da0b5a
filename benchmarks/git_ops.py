"""Per-experiment git cost: the median time of reset + commit + update_ref.

Ratchet's whole overhead per experiment should stay under 30 ms, and these
three calls are most of it. This script builds a throwaway repository with a
few small files, then runs 50 rounds of what the loop does for every
experiment: reset the worktree to the parent (after a "run" left outputs
behind), commit one edited file, and record the commit under an experiment
ref. It prints the median milliseconds and how many git processes one round
started (steady state, after the first round cached the parent's listing).

    .venv/bin/python benchmarks/git_ops.py
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ratchet import gitrepo
from ratchet.git.repo import Repo

__all__ = ["main"]

ROUNDS = 50


def make_repo(root: Path) -> None:
    """A small study: a few source files, a data dir and an ignore rule."""
    files = {
        "train.py": "LR = 0.01\nSTEPS = 100\nprint('val_loss: 1.0')\n",
        "evaluate.py": "print('eval')\n",
        "program.md": "# program\nmake it better\n",
        "ratchet.toml": "[study]\nname = 'bench'\n",
        "lib/util.py": "def f():\n    return 1\n",
        ".gitignore": "*.log\n__pycache__/\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=root, check=True
        )


class CallCounter:
    """Wraps subprocess.run inside gitrepo to record which git commands ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.real = subprocess.run

    def __call__(self, args, *rest, **kwargs):  # noqa: ANN001, ANN204 - mirrors subprocess.run
        self.calls.append(next(a for a in args[1:] if not a.startswith("-") and "=" not in a))
        return self.real(args, *rest, **kwargs)


def one_round(repo: Repo, tree: gitrepo.Worktree, parent: str, i: int) -> float:
    """Leave run outputs behind (untimed), then time reset + commit + update_ref."""
    (tree.path / "run.log").write_text("log\n" * 100)
    (tree.path / "out").mkdir(exist_ok=True)
    (tree.path / "out" / "model.bin").write_bytes(b"\0" * 4096)
    start = time.perf_counter()
    tree.reset(parent)
    text = f"LR = {0.01 + i / 1000:.4f}\nSTEPS = 100\nprint('val_loss: 1.0')\n"
    sha = tree.commit(parent, {"train.py": text}, f"experiment {i}")
    repo.update_ref(f"refs/ratchet/bench/exp/{i}", sha)
    return (time.perf_counter() - start) * 1000


def naive_round(tree: gitrepo.Worktree, parent: str, i: int) -> float:
    """The textbook six calls (reset, clean, add, write-tree, commit-tree, update-ref)."""
    (tree.path / "run.log").write_text("log\n" * 100)
    (tree.path / "out").mkdir(exist_ok=True)
    (tree.path / "out" / "model.bin").write_bytes(b"\0" * 4096)

    def git(*args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=tree.path, input=stdin, capture_output=True, check=True
        )
        return done.stdout.decode().strip()

    start = time.perf_counter()
    git("reset", "-q", "--hard", parent)
    git("clean", "-ffdxq")
    (tree.path / "train.py").write_text(f"LR = {i}\n")
    git("add", "--", "train.py")
    tree_sha = git("write-tree")
    sha = git("commit-tree", tree_sha, "-p", parent, stdin=b"naive\n")
    git("update-ref", f"refs/ratchet/naive/exp/{i}", sha)
    return (time.perf_counter() - start) * 1000


def spawn_cost() -> float:
    """Median ms of one trivial git process here, to read the figure against."""
    times = []
    for _ in range(20):
        start = time.perf_counter()
        subprocess.run(["git", "--version"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(root: Path) -> tuple[list[float], list[str], list[float]]:
    """A warm-up round, then ROUNDS timed rounds alternating with the naive way.

    Alternating keeps the comparison fair on a machine whose load changes.
    """
    repo = Repo.discover(root)
    parent = repo.head()
    tree = repo.worktree(root / ".ratchet" / "worktrees" / "bench-0", parent)
    one_round(repo, tree, parent, 0)
    counter = CallCounter()
    times: list[float] = []
    naive: list[float] = []
    for i in range(1, ROUNDS + 1):
        gitrepo.subprocess.run = counter  # type: ignore[assignment]
        try:
            times.append(one_round(repo, tree, parent, i))
        finally:
            gitrepo.subprocess.run = counter.real  # type: ignore[assignment]
        naive.append(naive_round(tree, parent, i))
    return times, counter.calls, naive


def main() -> None:
    """Print the median ms and the git calls per experiment."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "repo")
        root.mkdir()
        make_repo(root)
        times, calls, naive = measure(root)
    median = statistics.median(times)
    print(f"reset+commit+update_ref: median {median:.2f} ms over {ROUNDS} rounds")
    print(f"  min {min(times):.2f} ms, max {max(times):.2f} ms")
    per_round = len(calls) / ROUNDS
    print(f"git calls per experiment: {per_round:g} ({', '.join(calls[: round(per_round)])})")
    print(f"same work the textbook way (6 git calls): median {statistics.median(naive):.2f} ms")
    print(f"one `git --version` process here: {spawn_cost():.2f} ms")


if __name__ == "__main__":
    main()
