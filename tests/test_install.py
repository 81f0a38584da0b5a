"""An installed wheel is complete: built from this checkout, installed into a fresh venv, its
``ratchet`` scaffolds every template and measures the baselines without the source tree.

The wheel is built offline (``pip wheel --no-build-isolation`` with the setuptools of the test's
venv) from a copy of the checkout, so the checkout gains no build/ or egg-info. The fresh venv
gets the wheel alone (``--no-deps``); its dependencies are borrowed from the test's venv by a
``.pth`` line added after the install, which adds that site-packages to the end of sys.path
without running its .pth files, so the editable ratchet installed there is not seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 20 s: a wheel built and installed
ROOT = Path(__file__).resolve().parents[1]
# Each baseline takes about a second. nanogpt (a 60 s training run after a data preparation)
# and prompt (a 135M model loaded for each sample) are scaffolded and compared, not run.
MEASURED = ("sine", "blank", "sort", "circle_packing")
SCAFFOLDED = ("nanogpt", "prompt")


def _checkout_files() -> list[str]:
    """What a commit of this checkout would hold: tracked and untracked-but-not-ignored files."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh venv holding only the wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in _checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--wheel-dir", str(base / "dist"), str(source)],
        check=True, capture_output=True,
    )
    (wheel,) = (base / "dist").glob("ratchetlab-*.whl")
    env = base / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--disable-pip-version-check", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(site, "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env / "bin"


def _ratchet(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])
    return subprocess.run(
        [str(bin_dir / "ratchet"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )


def _template(name: str) -> set[str]:
    prefix = f"examples/{name}/"
    return {f[len(prefix):] for f in _checkout_files() if f.startswith(prefix)}


def test_the_package_runs_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import ratchet; print(ratchet.__file__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout
    assert Path(where).resolve().is_relative_to(installed.parent.resolve())


@pytest.mark.parametrize("template", MEASURED)
def test_each_template_measures_its_baseline(
    installed: Path, tmp_path: Path, template: str
) -> None:
    study = tmp_path / template
    init = _ratchet(installed, "init", str(study), "--template", template, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert {p.relative_to(study).as_posix() for p in study.rglob("*") if p.is_file()
            and ".git" not in p.relative_to(study).parts} == _template(template) | {"AGENTS.md"}
    run = _ratchet(installed, "run", str(study), "--max-experiments", "0", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = json.loads(_ratchet(installed, "log", str(study), "--json", cwd=tmp_path).stdout)
    assert [(r["status"], r["metric"] is not None) for r in rows] == [("baseline", True)]


@pytest.mark.parametrize("template", SCAFFOLDED)
def test_the_heavy_templates_are_complete(installed: Path, tmp_path: Path, template: str) -> None:
    study = tmp_path / template
    init = _ratchet(installed, "init", str(study), "--template", template, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    for name in _template(template):  # byte for byte, the data archives included
        assert (study / name).read_bytes() == (ROOT / "examples" / template / name).read_bytes()


def test_the_wheel_holds_only_the_tracked_template_files(installed: Path) -> None:
    (wheel,) = (installed.parents[1] / "dist").glob("ratchetlab-*.whl")
    names = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("ratchet/templates/")}
    assert {n for n in names if n.startswith("ratchet/templates/sine/")} == {
        f"ratchet/templates/sine/{f}" for f in _template("sine")
    }
    assert "ratchet/peers/files/ratchet_evaluate.py" in zipfile.ZipFile(wheel).namelist()


def test_ruff_is_a_dependency_so_the_lint_stage_runs_for_pip_users(installed: Path) -> None:
    (wheel,) = (installed.parents[1] / "dist").glob("ratchetlab-*.whl")
    archive = zipfile.ZipFile(wheel)
    (meta,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    required = [
        line.split(":", 1)[1].strip() for line in archive.read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert any(r.startswith("ruff") and "extra ==" not in r for r in required), required
