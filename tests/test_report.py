"""progress.png and report.md from crafted experiment lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ratchet.models import Experiment
from ratchet.report import summarize, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def exp(
    id: int,
    status: str,
    metric: float | None,
    parent: str | None = None,
    commit: str | None = None,
    description: str = "",
) -> Experiment:  # noqa: E501
    """A ledger row with just what the report reads."""
    return Experiment(
        id=id,
        tag="t",
        parent=parent,
        commit=commit,
        status=status,
        metric=metric,
        description=description,
    )  # noqa: E501


def crafted() -> list[Experiment]:
    """Baseline 10 → kept 8 → 5 → 4.5, with discards, failures and one diverged run."""
    return [
        exp(1, "baseline", 10.0, None, "aaaaaaa1", "baseline"),
        exp(2, "discard", 12.0, "aaaaaaa1", "x2"),
        exp(3, "keep", 8.0, "aaaaaaa1", "bbbbbbb2", "lr 0.1 → 0.2 (train.py:3)"),
        exp(4, "crash", None, "bbbbbbb2", "x4"),
        exp(5, "keep", 5.0, "bbbbbbb2", "ccccccc3", "steps 100 → 200 (train.py:4)"),
        exp(6, "discard", 1e6, "ccccccc3", "x6", "diverged | badly"),
        exp(7, "keep", 4.5, "ccccccc3", "ddddddd4", "wd 0.01 → 0.005 (train.py:5)"),
        exp(8, "timeout", None, "ddddddd4"),
        exp(9, "rejected", None, "ddddddd4"),
    ]


def assert_png(path: Path) -> None:
    """The file is a real, non-trivial PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000


def test_writes_both_files(tmp_path: Path) -> None:
    png, md = write_report(
        crafted(), metric_name="loss", goal="minimize", out_dir=tmp_path / "out", title="toy"
    )
    assert (png, md) == (tmp_path / "out" / "progress.png", tmp_path / "out" / "report.md")
    assert_png(png)
    assert md.read_text().startswith("# toy: ratchet report")


def test_report_numbers(tmp_path: Path) -> None:
    _, md = write_report(crafted(), metric_name="loss", goal="minimize", out_dir=tmp_path)
    text = md.read_text()
    assert "| baseline loss | 10 (experiment 1, commit `aaaaaaa`) |" in text
    assert "| best loss | 4.5 (experiment 7, commit `ddddddd`) |" in text
    assert "| improvement | 55.00 % vs baseline |" in text
    assert "| experiments | 9 |" in text
    assert "| keep rate | 3 of 8 after the baseline (37.5 %) |" in text
    for status, count in [
        ("baseline", 1),
        ("keep", 3),
        ("discard", 2),
        ("crash", 1),
        ("timeout", 1),
        ("rejected", 1),
    ]:
        assert f"| {status} | {count} |" in text
    assert "| 1 | 5 | 5 | -3 | -37.50 % | steps 100 → 200 (train.py:4) |" in text
    assert "| 2 | 3 | 8 | -2 | -20.00 % | lr 0.1 → 0.2 (train.py:3) |" in text
    assert "| 3 | 7 | 4.5 | -0.5 | -10.00 % | wd 0.01 → 0.005 (train.py:5) |" in text


def test_delta_is_against_the_parent_incumbent() -> None:
    experiments = [
        exp(1, "baseline", 10.0, None, "a"),
        exp(2, "keep", 8.0, "a", "b"),
        exp(3, "keep", 9.0, "a", "c"),  # a branch off the baseline, not off b
    ]
    hits = {h.experiment.id: h.gain for h in summarize(experiments, "minimize").hits}
    assert hits == {2: 2.0, 3: 1.0}


def test_maximize_means_higher_is_best(tmp_path: Path) -> None:
    experiments = [
        exp(1, "baseline", 0.5, None, "a"),
        exp(2, "keep", 0.6, "a", "b"),
        exp(3, "discard", 0.95, "b"),
        exp(4, "keep", 0.9, "b", "c"),
    ]
    summary = summarize(experiments, "maximize")
    assert summary.best.id == 4
    assert round(summary.improvement_pct, 6) == 80.0
    png, md = write_report(experiments, metric_name="acc", goal="maximize", out_dir=tmp_path)
    assert_png(png)
    assert "| improvement | 80.00 % vs baseline |" in md.read_text()


def test_no_experiments(tmp_path: Path) -> None:
    png, md = write_report([], metric_name="loss", goal="minimize", out_dir=tmp_path)
    assert_png(png)
    text = md.read_text()
    assert "| baseline loss | not measured |" in text
    assert "| experiments | 0 |" in text
    assert "No kept experiment yet." in text


def test_baseline_only(tmp_path: Path) -> None:
    png, md = write_report(
        [exp(1, "baseline", 2.0, None, "a")], metric_name="loss", goal="minimize", out_dir=tmp_path
    )
    assert_png(png)
    text = md.read_text()
    assert "| best loss | 2 (experiment 1, commit `a`) |" in text
    assert "| improvement | 0.00 % vs baseline |" in text
    assert "| keep rate | 0 of 0 after the baseline |" in text


def test_all_crashes(tmp_path: Path) -> None:
    experiments = [exp(i, "crash", None) for i in range(1, 4)]
    png, md = write_report(experiments, metric_name="loss", goal="minimize", out_dir=tmp_path)
    assert_png(png)
    text = md.read_text()
    assert "| best loss | not measured |" in text
    assert "| crash | 3 |" in text
    assert "| keep rate | 0 of 3 after the baseline (0.0 %) |" in text


def test_values_spanning_many_orders_of_magnitude(tmp_path: Path) -> None:
    experiments = [exp(1, "baseline", 1.0, None, "a")]
    experiments += [exp(i, "keep", 10.0**-i, "x", f"c{i}", f"step {i}") for i in range(2, 9)]
    png, _ = write_report(experiments, metric_name="mse", goal="minimize", out_dir=tmp_path)
    assert_png(png)


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = "import sys, ratchet.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
