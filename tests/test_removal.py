"""remove_tree: any tree a candidate can leave goes, and nothing outside it is touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ratchet.removal import remove_tree


def _chain(root: Path, depth: int, name: str) -> None:
    """A chain of directories deeper than PATH_MAX allows as one path."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)


def test_a_chain_longer_than_path_max_is_removed(tmp_path: Path) -> None:
    (tmp_path / "deep").mkdir()
    _chain(tmp_path / "deep", 3000, "dd")
    remove_tree(tmp_path / "deep")  # 3,000 levels of "dd/": 9,000 characters
    assert not (tmp_path / "deep").exists()


def test_links_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "data").write_text("mine")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "to-dir").symlink_to(outside)
    (tree / "to-file").symlink_to(outside / "keep" / "data")
    remove_tree(tree)
    assert not tree.exists() and (outside / "keep" / "data").read_text() == "mine"


def test_read_only_and_unreadable_directories_are_unlocked(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "ro" / "inner").mkdir(parents=True)
    (tree / "ro" / "inner" / "f").write_text("x")
    (tree / "closed").mkdir()
    (tree / "closed" / "g").write_text("y")
    (tree / "ro" / "inner").chmod(0o500)
    (tree / "ro").chmod(0o500)
    (tree / "closed").chmod(0)
    remove_tree(tree)
    assert not tree.exists()


def test_a_file_and_a_missing_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    remove_tree(tmp_path / "f")
    remove_tree(tmp_path / "nothing")
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_removed_is_named_escaped(tmp_path: Path) -> None:
    locked = tmp_path / "tree" / "sub" / "\x1b[2Jname"
    locked.parent.mkdir(parents=True)
    locked.write_text("x")
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root on a filesystem with file attributes")
    try:
        with pytest.raises(OSError) as caught:
            remove_tree(tmp_path / "tree")
        assert str(caught.value) == (
            f"[Errno 1] cannot remove {tmp_path}/tree/sub/\\x1b[2Jname: Operation not permitted"
        )
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    remove_tree(tmp_path / "tree")
    assert not (tmp_path / "tree").exists()
