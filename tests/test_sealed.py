"""The sealed directory: what a fixed phase sees of the candidate, and what its Python imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ratchet.execute.sealed import SealProblem, sealed_dir, sealed_env

PINNED = {
    "ratchet.toml": b"[study]\n",
    "evaluate.py": b"import scoring\nprint('score:', scoring.VALUE)\n",
    "scoring.py": b"VALUE = 5\n",
    "out/pinned.txt": b"pinned\n",
}


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_holds_the_pinned_files_and_the_declared_inputs_only(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "out" / "pinned.txt").write_text("rewritten by the candidate")
    (tmp_path / "json.py").write_text("raise SystemExit('shadow')")
    (tmp_path / "scoring.py").write_text("VALUE = -1")
    with sealed_dir(PINNED, ["out"], tmp_path) as sealed:
        assert _tree(sealed.work) == [
            "evaluate.py", "out/a.txt", "out/pinned.txt", "ratchet.toml", "scoring.py"
        ]
        assert (sealed.work / "out" / "pinned.txt").read_bytes() == b"pinned\n"  # pins win
        assert (sealed.work / "scoring.py").read_bytes() == PINNED["scoring.py"]
        assert _tree(sealed.code) == ["evaluate.py", "scoring.py"]
        root = sealed.root
        assert not root.is_relative_to(tmp_path)
    assert not root.exists()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: None, "declared input out is missing"),
        (lambda d: (d / "out").symlink_to("/etc"), "declared input out is a symlink"),
        (
            lambda d: ((d / "out").mkdir(), (d / "out" / "key").symlink_to("/etc/hostname")),
            "declared input out holds a symlink: out/key",
        ),
        (lambda d: os.mkfifo(d / "out"), "declared input out is not a regular file"),
    ],
)
def test_a_bad_declared_input_is_refused_with_its_name(tmp_path: Path, make, reason) -> None:
    make(tmp_path)
    with pytest.raises(SealProblem, match=reason):
        with sealed_dir(PINNED, ["out"], tmp_path):
            pass


def test_python_there_imports_protected_helpers_and_nothing_of_the_candidates(
    tmp_path: Path,
) -> None:
    (tmp_path / "solver.py").write_text("print('candidate code ran')")
    probe = (
        "import sys, scoring\n"
        "try:\n"
        "    import solver\n"
        "except ImportError:\n"
        "    print('no solver')\n"
        "print(scoring.VALUE, sys.flags.safe_path, sys.flags.no_user_site,"
        " sys.dont_write_bytecode)\n"
    )
    with sealed_dir({**PINNED, "probe.py": probe.encode()}, ["solver.py"], tmp_path) as sealed:
        env = sealed_env({"PATH": os.environ["PATH"], "PYTHONPYCACHEPREFIX": "/x"}, sealed)
        done = subprocess.run(
            [sys.executable, "probe.py"], cwd=sealed.work, env=env, capture_output=True, text=True
        )
        assert env["RATCHET_REPORT_FD"] == str(sealed.report_w) and sealed.report_w >= 10
        assert "PYTHONPYCACHEPREFIX" not in env
        assert list((sealed.code).rglob("__pycache__")) == []
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["no solver", "5 True 1 True"]
