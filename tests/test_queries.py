"""The read model shared by status, log, report and the dashboard."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import ratchet

from ratchet.models import Experiment, Usage
from ratchet.store import queries
from ratchet.store.migrations import migrate, version


def exp(id: int, status: str, metric: float | None, tag: str = "t", **kw: object) -> Experiment:
    return Experiment(id=id, tag=tag, parent=None, commit=f"c{id}", status=status,
                      metric=metric, **kw)  # fmt: skip


def test_overview_figures() -> None:
    exps = [
        exp(1, "baseline", 10.0, duration_s=2.0, samples=[10.0]),
        exp(2, "keep", 8.0, duration_s=4.0, samples=[8.0, 8.0]),
        exp(3, "discard", 9.0, duration_s=2.0, samples=[9.0]),
        exp(4, "crash", None, duration_s=1.5),
        exp(5, "rejected", None, reason="policy: protected"),
        exp(6, "rejected", None, reason="proposal: model refused"),  # not a saving
        exp(7, "pruned", None, duration_s=0.5, usage=Usage(10, 5, 0.25)),
        exp(8, "running", None),
    ]
    o = queries.overview(exps)
    assert (o.baseline.id, o.incumbent.id) == (1, 2)
    assert o.change == -20.0
    assert o.counts == {"baseline": 1, "keep": 1, "discard": 1, "crash": 1, "rejected": 2,
                        "pruned": 1, "running": 1}  # fmt: skip
    assert o.failed_s == 2.0 and [e.id for e in o.running] == [8]
    assert o.rejected_early == 1 and o.saved_rejecting_s == 3.0  # median judged run: 3 s
    assert o.saved_pruning_s == 1.5  # median sample 2 s x (0 + 1) - 0.5 s run
    assert (o.input_tokens, o.output_tokens, o.cost_usd) == (10, 5, 0.25)


def test_keep_rate_improvement_and_the_status_lines() -> None:
    exps = [exp(1, "baseline", 10.0), exp(2, "keep", 8.0), exp(3, "discard", 9.0),
            exp(4, "running", None, usage=Usage(1200, 34, 0.5))]  # fmt: skip
    o = queries.overview(exps)
    assert (o.total, o.after_baseline, o.keep_rate) == (4, 2, 0.5)  # running ones do not count
    assert o.improvement("minimize") == 20.0 and o.improvement("maximize") == -20.0
    assert queries.overview([exp(1, "running", None)]).keep_rate is None
    assert queries.budget_lines(o)[0].startswith("budget    0.0 s spent on candidates")
    line = queries.usage_line(o, max_tokens=5000, max_cost_usd=2.0)
    assert line == "1,234 tokens (1,200 in, 34 out) of max 5,000, $0.5000 of max $2"
    assert queries.usage_line(queries.overview(exps[:3]), max_tokens=None, max_cost_usd=None) == ""


def test_overviews_are_per_tag_and_best_is_each_tags_incumbent() -> None:
    exps = [exp(1, "baseline", 5.0, "a"), exp(2, "baseline", 7.0, "b"), exp(3, "keep", 4.0, "a")]
    per_tag = queries.overviews(exps)
    assert list(per_tag) == ["a", "b"]
    assert per_tag["a"].incumbent.id == 3 and per_tag["b"].incumbent.id == 2


def test_status_and_log_read_an_old_ledger_without_changing_it(fast_study: Path) -> None:
    state = fast_study / ".ratchet"
    state.mkdir()
    db = sqlite3.connect(state / "ledger.sqlite", isolation_level=None)
    migrate(db, upto=1)
    db.execute("INSERT INTO experiments VALUES (1,'main',NULL,'abc','baseline','','{}',0,0,0,'',0)")
    db.execute("INSERT INTO outcomes VALUES (1,'baseline',5.0,'',1.0,0)")
    db.close()
    status = ratchet("status", str(fast_study))
    assert status.returncode == 0, status.stderr
    assert "baseline  5 (#1)" in status.stdout
    rows = json.loads(ratchet("log", str(fast_study), "--json").stdout)
    assert [(r["id"], r["status"], r["metric"], r["worker"]) for r in rows] == [
        (1, "baseline", 5.0, "")
    ]
    assert set(rows[0]) == set(queries.row(exp(1, "baseline", 5.0)))
    db = sqlite3.connect(state / "ledger.sqlite")
    try:
        assert version(db) == 1  # readers never migrate
    finally:
        db.close()
