"""`ratchet ui` over HTTP: a real server on 127.0.0.1 reading a ledger written by `ratchet run`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ratchet
from ui_helpers import Served, build_study, get, proposals, serve

from ratchet.errors import LedgerError
from ratchet.models import Experiment
from ratchet.store.ledger import Ledger
from ratchet.study import load_study
from ratchet.ui.data import StudyData, chart, overview

SCORES = [4.0, 4.5, None, 3.0, 3.5]  # ids 2..6: keep, discard, crash, keep, discard


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One study with two tags, run for real once for the whole module."""
    root = tmp_path_factory.mktemp("ui")
    config = root / ".gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", str(config))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        path = build_study(root, SCORES)
        second = proposals(root / "second.jsonl", [4.8])
        done = ratchet(
            "run", str(path), "--tag", "t2", "--proposer", "replay", "--replay", str(second),
            "--max-experiments", "1",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield path


@pytest.fixture(scope="module")
def served(study: Path) -> Iterator[Served]:
    with serve(study) as server:
        yield server


def api(served: Served, path: str) -> object:
    status, body = get(served, path)
    assert status == 200, body
    return json.loads(body)


def log_json(study: Path, *tag: str) -> list[dict]:
    done = ratchet("log", str(study), "--json", *(("--tag", tag[0]) if tag else ()))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_experiments_endpoint_has_the_rows_of_ratchet_log_json(study: Path, served: Served) -> None:
    assert api(served, "/api/experiments") == log_json(study)
    assert api(served, "/api/experiments?tag=t1") == log_json(study, "t1")
    table = api(served, "/api/experiments?fields=table")
    assert [r["id"] for r in table] == [r["id"] for r in log_json(study)]
    assert "meta" not in table[0] and table[0]["status"] == "baseline"
    assert api(served, "/api/experiments?fields=table&since=5") == table[4:]
    assert get(served, "/api/experiments?since=x")[0] == 400


def test_overview_figures_equal_the_ledger(study: Path, served: Served) -> None:
    rows = log_json(study, "t1")
    kept = [r for r in rows if r["status"] in ("baseline", "keep")]
    o = api(served, "/api/overview?tag=t1")
    assert o["total"] == len(rows) == 6
    assert o["counts"] == {"baseline": 1, "keep": 2, "discard": 2, "crash": 1}
    assert o["baseline"]["metric"] == 5.0 == kept[0]["metric"]
    assert o["best"] == {"id": 5, "metric": 3.0, "description": kept[-1]["description"],
                         "status": "keep"}  # fmt: skip
    assert o["improvement_pct"] == pytest.approx(40.0)
    assert o["keep_rate"] == pytest.approx(2 / 5)
    status = ratchet("status", str(study), "--tag", "t1").stdout.splitlines()
    assert o["budget"] == [line for line in status if line.startswith(("budget ", "saved "))]
    crashed = sum(r["duration_s"] for r in rows if r["status"] == "crash")
    assert o["failed_s"] == pytest.approx(crashed, abs=0.01)
    spend = {p["proposer"]: p["experiments"] for p in o["proposers"]}  # by the recorded proposer
    assert spend == {"(baseline)": 1, "replay": 5}
    assert {r["proposer"] for r in rows[1:]} == {"replay"}


def test_overview_defaults_to_the_latest_tag(served: Served) -> None:
    assert api(served, "/api/tags")["tags"] == ["t1", "t2"]
    assert api(served, "/api/overview")["tag"] == "t2"


def test_kept_experiment_shows_diff_reason_lesson_samples_and_logs(served: Served) -> None:
    d = api(served, "/api/experiments/5")
    assert d["status"] == "keep" and d["parent_id"] == 2
    assert "+score: 3.0" in d["diff"] and "-score: 4.0" in d["diff"]
    assert "beats" in d["reason"]
    assert d["lesson"].endswith("made score better by 1 (keep)")
    assert d["incumbent"]["samples"] == [4.0] and d["candidate"]["samples"] == [3.0]
    assert d["curves"]["key"] == "score"
    assert d["curves"]["candidate"][0] == [0.25, 3.75]
    assert d["curves"]["incumbent"][-1] == [1.0, 4.0]
    assert d["logs"][0]["name"] == "run.log" and d["logs"][0]["text"].endswith("score: 3.0\n")


def test_chart_follows_progress_png(served: Served) -> None:
    c = api(served, "/api/chart?tag=t1")
    assert c["kind"] == ["kept", "kept", "other", "failed", "kept", "other"]
    assert c["best"] == [5.0, 4.0, 4.0, 4.0, 3.0, 3.0]
    assert c["label"][4] == "idea 3: set the score to 3.0"


def test_lineage_links_each_experiment_to_the_keep_it_built_on(served: Served) -> None:
    nodes = api(served, "/api/lineage?tag=t1")["nodes"]
    assert [(n["id"], n["parent_id"]) for n in nodes] == [
        (1, None), (2, 1), (3, 2), (4, 2), (5, 2), (6, 5)
    ]  # fmt: skip


def test_logs_are_served_only_from_the_experiments_log_folder(served: Served) -> None:
    status, body = get(served, "/api/experiments/5/logs/run.log")
    assert status == 200 and body.decode().endswith("score: 3.0\n")
    for path in ("/api/experiments/5/logs/../../ledger.sqlite",
                 "/api/experiments/5/logs/..%2F..%2Fledger.sqlite",
                 "/api/experiments/5/logs/%2Fetc%2Fpasswd",
                 "/static/..%2Fdata.py", "/static/../app.py",
                 "/api/experiments/999/logs/run.log"):  # fmt: skip
        assert get(served, path)[0] == 404, path
    assert get(served, "/api/experiments/999")[0] == 404


def test_a_foreign_host_header_is_refused(served: Served) -> None:
    status, body = get(served, "/api/experiments", {"Host": "attacker.example:80"})
    assert status == 403 and b"127.0.0.1" in body


def test_another_address_requires_the_printed_token(study: Path) -> None:
    with serve(study, "--host", "127.0.0.2") as server:
        assert server.url.startswith("http://127.0.0.2:") and server.token
        assert get(server, "/api/overview", {"Authorization": "Bearer nope"})[0] == 401
        plain = urllib.request.Request(server.url + "/")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(plain, timeout=10)
        assert denied.value.code == 401
        denied.value.close()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(f"{server.url}/experiments?token={server.token}", timeout=10) as page:
            assert page.status == 200 and page.url == f"{server.url}/experiments"
        with opener.open(f"{server.url}/api/overview?tag=t1", timeout=10) as answer:
            assert json.loads(answer.read())["total"] == 6  # the cookie carries the token
        assert get(server, "/api/overview")[0] == 200  # the header carries it


def test_events_announce_a_row_finished_by_a_concurrent_run(study: Path, served: Served) -> None:
    stream = urllib.request.urlopen(served.url + "/api/events", timeout=20)
    try:
        first = _next_event(stream, "ledger")
        replay = proposals(study.parent / "more.jsonl", [3.9])
        done = ratchet(
            "run", str(study), "--tag", "t3", "--proposer", "replay", "--replay", str(replay),
            "--max-experiments", "1",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        finished = time.monotonic()
        later = _next_event(stream, "ledger")
        assert time.monotonic() - finished < 2.0
        assert later["version"][1] > first["version"][1]
    finally:
        stream.close()


def _next_event(stream: object, name: str) -> dict:
    """The data of the next event called ``name`` (reading lines until it comes)."""
    event = None
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])
    raise AssertionError("the event stream ended")


def test_the_dashboard_cannot_write_the_ledger(study: Path) -> None:
    data = StudyData(load_study(study))
    before = (study / ".ratchet" / "ledger.sqlite").read_bytes()
    assert len(data.experiments()) >= 8
    ledger = data._open()
    assert ledger is not None
    with pytest.raises(LedgerError, match="read-only"):
        ledger.record_pins("x", {"a": "b"})
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # the file itself, too
        ledger._db.execute("INSERT INTO pins (tag, pins, created_at) VALUES ('x', '{}', 0)")
    data.close()
    assert (study / ".ratchet" / "ledger.sqlite").read_bytes() == before


def test_without_the_ui_extra_one_sentence_names_the_install(study: Path) -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; from ratchet.cli import main;"
        f" sys.exit(main(['ui', {str(study)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'ratchetlab[ui]'" in done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--port", "70000"], "--port 70000"), (["--tag", "bad tag"], "--tag")],
)  # fmt: skip
def test_bad_arguments_are_one_sentence_and_exit_2(
    study: Path, args: list[str], words: str
) -> None:
    done = ratchet("ui", str(study), *args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_a_busy_port_is_one_sentence(study: Path, served: Served) -> None:
    port = served.url.rsplit(":", 1)[1]
    done = ratchet("ui", str(study), "--port", port)
    assert done.returncode == 2 and f"127.0.0.1:{port}" in done.stderr


def test_pages_are_served_with_vendored_assets_only(served: Served) -> None:
    for path in ("/", "/experiments", "/experiments/5", "/lineage", "/live"):
        status, body = get(served, path)
        assert status == 200 and b"/static/app.js" in body
        assert b"http://" not in body and b"https://" not in body  # no CDN
    status, body = get(served, "/static/vendor/uplot-1.6.32/uPlot.iife.min.js")
    assert status == 200 and b"uPlot" in body


def exp(n: int, status: str, metric: float | None) -> Experiment:
    """A finished (or running) experiment started at n minutes that took 30 s."""
    return Experiment(id=n, tag="t", parent=None, commit=f"c{n}", status=status, metric=metric,
                      created_at=float(n * 60), duration_s=30.0)  # fmt: skip


def test_chart_marks_off_scale_pruned_and_failed_points() -> None:
    rows = [exp(1, "baseline", 1.0), exp(2, "discard", 1.02), exp(3, "discard", 50.0),
            exp(4, "pruned", None), exp(5, "crash", None), exp(6, "keep", 0.9),
            exp(7, "remeasure", 0.91), exp(8, "running", None)]  # fmt: skip
    c = chart(rows, "minimize")
    assert c["kind"] == ["kept", "other", "off", "pruned", "failed", "kept", "remeasure", "running"]
    assert c["best"] == [1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.9, 0.9]
    lo, hi = c["range"]
    assert lo < 0.9 and 1.0 < hi < 50.0  # framed by the frontier, as progress.png is
    assert chart(rows, "maximize")["best"][5] == 1.0  # a lower keep is not the best there


def test_experiments_per_hour_counts_finished_ones_over_wall_time(study: Path) -> None:
    rows = [exp(1, "baseline", 1.0), exp(2, "discard", 1.1), exp(3, "keep", 0.9)]
    # the first started at 60 s, the last ended at 180 + 30 s: 3 experiments in 150 s
    figures = overview(load_study(study), rows, now=1e9)
    assert figures["per_hour"] == pytest.approx(3 / (150 / 3600))
    running = [*rows, exp(4, "running", None)]  # while one runs, the clock runs to now
    assert overview(load_study(study), running, now=60 + 3600)["per_hour"] == pytest.approx(3.0)


def test_an_empty_study_serves_empty_pages(tmp_path: Path) -> None:
    from conftest import FAST_TOML, make_repo

    files = {"ratchet.toml": FAST_TOML, "program.md": "x\n", "value.txt": "score: 1\n"}
    study = make_repo(tmp_path / "new", {**files, "check.sh": "echo\n"})
    with serve(study) as server:
        assert api(server, "/api/tags")["tags"] == []
        assert api(server, "/api/overview")["total"] == 0
        assert api(server, "/api/experiments") == []
        assert api(server, "/api/chart")["id"] == []


def test_a_ledger_moved_aside_is_noticed(study: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("worktrees"))
    data = StudyData(load_study(copy))
    assert len(data.experiments()) >= 8
    ledger = copy / ".ratchet" / "ledger.sqlite"
    ledger.rename(ledger.with_suffix(".old"))
    assert data.experiments() == []
    fresh = Ledger(ledger)
    fresh.finish(fresh.start(tag="new", parent=None, commit=None, description="x"),
                 status="rejected", metric=None)  # fmt: skip
    fresh.close()
    assert [(e.tag, e.status) for e in data.experiments()] == [("new", "rejected")]
    data.close()


def test_a_missing_commit_gives_a_note_instead_of_a_diff(study: Path) -> None:
    data = StudyData(load_study(study))
    gone = Experiment(id=99, tag="t", parent="1" * 40, commit="2" * 40, status="keep")
    assert data.diff(gone).startswith("(no diff: ")
    data.close()
