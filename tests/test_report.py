"""progress.png and report.md from crafted experiment lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ratchet.models import Experiment
from ratchet.report import _figure, is_experiment, summarize, write_report

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


# --- what counts as an experiment, and how the figure draws it --------------------------------


def with_extras() -> list[Experiment]:
    """A baseline, a keep and a crash, plus a re-measurement and a proposer failure."""
    no_proposal = Experiment(
        id=4,
        tag="t",
        parent="a",
        commit=None,
        status="rejected",
        description="(no proposal)",
        reason="proposal: the model answered nothing usable",
        meta={"proposer_failed": True, "unusable": False},
    )
    return [
        exp(1, "baseline", 10.0, None, "a", "baseline"),
        exp(2, "keep", 8.0, "a", "b", "better"),
        exp(3, "remeasure", 8.1, "b", "b"),
        no_proposal,
        exp(5, "crash", None, "b", None, "broken"),
        exp(6, "discard", 9.0, "b", None, "worse"),
    ]


def test_remeasurements_and_no_proposal_rows_are_not_counted(tmp_path: Path) -> None:
    _, md = write_report(with_extras(), metric_name="loss", goal="minimize", out_dir=tmp_path)
    text = md.read_text()
    assert "| experiments | 4 |" in text
    assert "| keep rate | 1 of 3 after the baseline (33.3 %) |" in text
    assert "| remeasure |" not in text and "| rejected |" not in text
    assert (
        "Not counted as experiments: 1 re-measurement of the incumbent"
        " and 1 proposer failure (no proposal)." in text
    )


def drawn(ax: object) -> dict[str, list[float]]:
    """x of every scatter point in the figure, by legend label."""
    found: dict[str, list[float]] = {}
    for collection in ax.collections:  # type: ignore[attr-defined]
        xs = [float(x) for x, _ in collection.get_offsets()]
        found.setdefault(collection.get_label(), []).extend(xs)
    return found


def test_the_figure_numbers_experiments_by_id_and_draws_only_experiments() -> None:
    rows = with_extras()
    kept = [e for e in rows if is_experiment(e)]
    fig = _figure(kept, summarize(rows, "minimize"), "loss", "minimize", "toy")
    ax = fig.axes[0]
    points = drawn(ax)
    assert points["baseline and kept"] == [1.0, 2.0]
    assert points["discarded"] == [6.0]
    assert points["crash, timeout or pruned"] == [5.0]  # the crash, not the "(no proposal)" row
    everywhere = [x for xs in points.values() for x in xs]
    assert 3.0 not in everywhere and 4.0 not in everywhere
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "toy: 4 experiments, 1 kept" in ax.get_title()


def test_one_experiment_is_singular() -> None:
    rows = [exp(1, "baseline", 2.0, None, "a")]
    fig = _figure(rows, summarize(rows, "minimize"), "loss", "minimize", "toy")
    assert fig.axes[0].get_title().startswith("toy: 1 experiment, 0 kept")


def test_labels_of_close_keeps_never_overlap() -> None:
    rows = [exp(1, "baseline", 10.0, None, "c1", "baseline")]
    rows += [
        exp(i, "keep", 10.0 - 0.01 * i, f"c{i - 1}", f"c{i}", f"change number {i} to the model")
        for i in range(2, 40)
    ]
    fig = _figure(rows, summarize(rows, "minimize"), "loss", "minimize", "toy")
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_visible()]
    assert "change number 39 to the model" in [t.get_text() for t in labels]
    assert len(labels) >= 5
    boxes = [t.get_window_extent(renderer) for t in labels]
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)
