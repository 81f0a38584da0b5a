"""Puts the study templates (examples/) into the wheel as ``ratchet/templates``.

Everything else lives in pyproject.toml. The templates stay in examples/ where people read and
test them; ``ratchet init --template`` in an installed (non-editable) copy finds them here. From a
git checkout only what git would commit ships (tracked, or new and not ignored), so a study run
in examples/ leaves none of its outputs in the wheel; an sdist has no git and is already
filtered by MANIFEST.in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def template_files() -> list[Path]:
    """The files of every example study (a directory holding ratchet.toml), relative to HERE."""
    studies = sorted(p.parent.name for p in (HERE / "examples").glob("*/ratchet.toml"))
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
             *(f"examples/{s}" for s in studies)],
            cwd=HERE, capture_output=True, check=True,
        ).stdout.decode().split("\0")
        files = [Path(name) for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # no git here: an unpacked sdist
        files = [p.relative_to(HERE) for s in studies for p in (HERE / "examples" / s).rglob("*")]
    return [
        f for f in files
        if (HERE / f).is_file()
        and "__pycache__" not in f.parts
        and not any(part.startswith(".") for part in f.parts)
    ]


class BuildWithTemplates(build_py):
    """``build_py`` plus examples/<study>/… copied to <build>/ratchet/templates/<study>/…."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads examples/ in place
            return
        target = Path(self.build_lib) / "ratchet" / "templates"
        for name in template_files():
            dest = target / Path(*name.parts[1:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / name, dest)


setup(cmdclass={"build_py": BuildWithTemplates})
