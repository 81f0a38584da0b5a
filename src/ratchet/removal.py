"""Deleting a tree a candidate left behind, however deep, without following it anywhere.

A candidate decides what its worktree holds when it ends, so removal must
not depend on its shape. ``shutil.rmtree`` recurses once per directory
level (a chain 2,000 deep raises ``RecursionError``) and builds full paths
(a deep enough chain passes ``PATH_MAX``). ``remove_tree`` keeps its own
stack instead, holds one open directory at a time and names every entry
relative to that descriptor, so neither depth nor path length matters. It
never follows a symlink (a link is deleted, not its target), checks that
``..`` leads back to the directory it came from, and unlocks a directory the
candidate made read-only before giving up on it. What it still cannot
delete (a file marked immutable with ``chattr +i``, a file of another user)
ends in an ``OSError`` naming the entry; callers decide what to do then
(``Workspace`` moves the worktree aside, ``ratchet doctor`` reports it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["remove_tree"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SHOWN_CHARS = 200  # of a very deep path in an error message


@dataclass
class _Level:
    """One directory on the way down: its name, identity, and subdirectories left to do."""

    name: str
    ident: tuple[int, int]
    pending: list[str] = field(default_factory=list)


def remove_tree(path: str | Path) -> None:
    """Delete ``path`` (a file, a symlink or a whole directory); a missing path is fine."""
    path = os.path.abspath(os.fspath(path))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    parent, name = os.path.split(path)
    top = os.open(parent, _DIR)
    try:
        _remove_dir(top, name, path)
    finally:
        os.close(top)


def _remove_dir(top: int, name: str, path: str) -> None:
    """Depth first, iteratively: empty each directory of files, descend, rmdir on the way up."""
    fd = _open_child(top, name)
    levels: list[_Level] = []
    try:
        levels.append(_Level(name, _ident(fd), _clear(fd, path, [])))
        while levels:
            level = levels[-1]
            if level.pending:
                child = level.pending.pop()
                new = _open_child(fd, child)
                os.close(fd)
                fd = new
                levels.append(_Level(child, _ident(fd)))
                levels[-1].pending = _clear(fd, path, [done.name for done in levels[1:]])
                continue
            below = [done.name for done in levels[1:]]
            levels.pop()
            up = os.dup(top) if not levels else _open_parent(fd, levels[-1].ident, path)
            os.close(fd)
            fd = up
            try:
                _unlocked(os.rmdir, fd, level.name)
            except OSError as exc:
                where = _shown(os.path.join(path, *below))
                raise OSError(exc.errno, f"cannot remove {where}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _clear(fd: int, path: str, below: list[str]) -> list[str]:
    """Delete the files and links in the open directory; return its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        if is_dir:
            subdirs.append(name)
            continue
        try:
            _unlocked(os.unlink, fd, name)
        except OSError as exc:
            where = _shown(os.path.join(path, *below, name))
            raise OSError(exc.errno, f"cannot remove {where}: {exc.strerror}") from None
    return subdirs


def _unlocked(remove: Callable[..., None], fd: int, name: str) -> None:
    """Remove ``name`` from the open directory, making it writable first if it refuses."""
    try:
        remove(name, dir_fd=fd)
    except PermissionError:
        os.fchmod(fd, os.fstat(fd).st_mode | stat.S_IRWXU)
        remove(name, dir_fd=fd)


def _open_child(fd: int, name: str) -> int:
    """Open a subdirectory without following a link; unlock it first when it is unreadable."""
    try:
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
    except PermissionError:
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if not stat.S_ISDIR(mode):
            raise
        os.chmod(name, mode | stat.S_IRWXU, dir_fd=fd)
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)


def _open_parent(fd: int, expected: tuple[int, int], path: str) -> int:
    """``..`` of the open directory, refusing a tree that was moved while it was removed."""
    up = os.open("..", _DIR, dir_fd=fd)
    if _ident(up) != expected:
        os.close(up)
        raise OSError(f"{path} changed while it was being removed; nothing outside it was touched")
    return up


def _ident(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino)


def _shown(full: str) -> str:
    """The failing entry's path for a message: a candidate chose the names, so control
    characters are escaped as in Python literals, and the middle of a deep path is cut."""
    full = "".join(c if c.isprintable() else repr(c)[1:-1] for c in full)
    if len(full) <= _SHOWN_CHARS:
        return full
    return f"{full[: _SHOWN_CHARS // 2]}...{full[-_SHOWN_CHARS // 2 :]}"
