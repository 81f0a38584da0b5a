"""Git's object format, written from Python: blobs, trees and commits as data.

Ratchet writes an experiment's objects itself instead of spawning git for
each (one git process costs 2-3 ms, and this runs once per experiment). The
format is git's documented, stable loose-object format, in sha1 or sha256 as
the repository uses; ``git fsck --strict`` accepts what is written (tested).
Only ``gitrepo`` uses this module.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError

__all__ = ["Snapshot", "ObjectWriter", "tree_body", "check_conflicts", "build_tree"]

TREE_MODE = "040000"
SUBMODULE_MODE = "160000"
FILE_MODES = ("100644", "100755")


@dataclass(frozen=True)
class Snapshot:
    """One commit's tree, grouped by directory, so reset and commit need no git call.

    ``dirs`` maps a directory ('' is the root) to its entries: name →
    (mode, sha). Snapshots are shared through a cache and never mutated.
    """

    dirs: dict[str, dict[str, tuple[str, str]]]

    @classmethod
    def parse(cls, listing: bytes) -> Snapshot:
        """Read ``git ls-tree -r -t -z --full-tree`` output."""
        dirs: dict[str, dict[str, tuple[str, str]]] = {"": {}}
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, _kind, sha = meta.decode().split(" ")
            path = os.fsdecode(raw_path)
            parent, _, name = path.rpartition("/")
            dirs.setdefault(parent, {})[name] = (mode, sha)
            if mode == TREE_MODE:
                dirs.setdefault(path, {})
        return cls(dirs)


def tree_body(entries: Mapping[str, tuple[str, str]]) -> bytes:
    """Serialize a tree the way git does: sorted as if directories end in '/'."""

    def key(name: str) -> bytes:
        return os.fsencode(name) + (b"/" if entries[name][0] == TREE_MODE else b"")

    parts = []
    for name in sorted(entries, key=key):
        mode, sha = entries[name]
        parts.append(mode.lstrip("0").encode() + b" " + os.fsencode(name) + b"\0")
        parts.append(bytes.fromhex(sha))
    return b"".join(parts)


@dataclass(frozen=True)
class ObjectWriter:
    """Writes loose objects into the repository's object directory."""

    directory: Path
    algorithm: str  # "sha1" or "sha256", the repository's object format

    def write(self, kind: str, body: bytes) -> str:
        """Store one object (idempotent: an existing object is left alone); return its id."""
        data = f"{kind} {len(body)}".encode() + b"\0" + body
        sha = hashlib.new(self.algorithm, data).hexdigest()
        target = self.directory / sha[:2] / sha[2:]
        if not target.exists():
            try:
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
            except FileNotFoundError:  # first object in this fan-out directory
                target.parent.mkdir(exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="tmp_obj_")
            with os.fdopen(fd, "wb") as out:
                out.write(zlib.compress(data))
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        return sha


def check_conflicts(snapshot: Snapshot, files: Mapping[str, bytes]) -> None:
    """Refuse edits that would turn a directory into a file or a file into a directory."""
    for rel in files:
        parent, _, name = rel.rpartition("/")
        mode = snapshot.dirs.get(parent, {}).get(name, ("", ""))[0]
        if mode in (TREE_MODE, SUBMODULE_MODE):
            raise GitError(f"edit path {rel!r} is a directory in the parent commit")
        ancestor, _, below = parent.rpartition("/")
        while below:
            mode = snapshot.dirs.get(ancestor, {}).get(below, ("", ""))[0]
            if mode and mode != TREE_MODE:
                raise GitError(f"edit path {rel!r} goes through {below!r}, a file in the parent")
            ancestor, _, below = ancestor.rpartition("/")


def build_tree(
    objects: ObjectWriter, snapshot: Snapshot, blobs: Mapping[str, str]
) -> tuple[str, Snapshot]:
    """Write the trees that change when ``blobs`` replace entries; return the root tree.

    Unchanged subtrees keep their ids; only the edited paths' directories and
    their ancestors are rewritten (deepest first, so each parent sees its
    child's new id). The root is always written, so empty edits work too.
    """
    dirs = dict(snapshot.dirs)
    touched: set[str] = set()

    def own(directory: str) -> dict[str, tuple[str, str]]:
        if directory not in touched:
            dirs[directory] = dict(dirs.get(directory, {}))
            touched.add(directory)
        return dirs[directory]

    own("")
    for rel, sha in blobs.items():
        parent, _, name = rel.rpartition("/")
        old_mode = dirs.get(parent, {}).get(name, ("", ""))[0]
        own(parent)[name] = (old_mode if old_mode in FILE_MODES else "100644", sha)
        while parent:
            up, _, child = parent.rpartition("/")
            own(up).setdefault(child, (TREE_MODE, ""))
            parent = up
    root = ""
    for directory in sorted(touched, key=lambda d: d.count("/") + bool(d), reverse=True):
        tree_sha = objects.write("tree", tree_body(dirs[directory]))
        if directory:
            up, _, child = directory.rpartition("/")
            dirs[up][child] = (TREE_MODE, tree_sha)
        else:
            root = tree_sha
    return root, Snapshot(dirs)
