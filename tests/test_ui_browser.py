"""The dashboard in a real browser: Playwright driving Debian's Chromium against `ratchet ui`.

Skipped, with the reason printed, only where Chromium is not installed
(`make install` installs it with apt-get when run as root). Playwright's own
browser download is never used.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ratchet
from ui_helpers import Served, build_study, proposals, serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed (apt-get install chromium); the browser tests need it",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

SCORES = [4.0, 4.5, None, 3.0, 3.5]  # ids 2..6: keep, discard, crash, keep, discard
PAGES = {"overview": "/", "experiments": "/experiments", "experiment": "/experiments/5",
         "lineage": "/lineage", "live": "/live"}  # fmt: skip
READY = {"overview": "#chart canvas", "experiments": ".vt .row", "experiment": "#diff",
         "lineage": "#tree .node", "live": "#recent table"}  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("ui-browser")
    config = root / ".gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_GLOBAL", str(config))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        yield build_study(root, SCORES)


@pytest.fixture(scope="module")
def served(study: Path) -> Iterator[Served]:
    with serve(study) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def distinct_colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or [])


def test_every_page_renders_and_its_screenshot_is_not_blank(
    served: Served, page: object, tmp_path: Path
) -> None:
    for name, path in PAGES.items():
        page.goto(served.url + path)  # type: ignore[attr-defined]
        page.wait_for_selector(READY[name], timeout=10_000)  # type: ignore[attr-defined]
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
        assert distinct_colours(shot) > 40, name


def test_overview_shows_the_ledgers_figures(served: Served, study: Path, page: object) -> None:
    rows = json.loads(ratchet("log", str(study), "--json").stdout)
    page.goto(served.url + "/")  # type: ignore[attr-defined]
    page.wait_for_selector("#chart canvas")  # type: ignore[attr-defined]
    cards = {
        c.locator(".k").inner_text().lower(): c.locator(".v").inner_text()
        for c in page.locator(".card").all()  # type: ignore[attr-defined]
    }
    assert cards["baseline"] == "5" and cards["best"] == "3"
    assert cards["experiments"] == str(len(rows))
    assert cards["keep rate"] == "40.0%" and cards["improvement"] == "+40.00%"
    status = ratchet("status", str(study), "--tag", "t1").stdout.splitlines()
    budget = page.locator("#budget").inner_text()  # type: ignore[attr-defined]
    assert budget.splitlines() == [s for s in status if s.startswith(("budget ", "saved "))]


def test_chart_hover_names_the_experiment(served: Served, page: object) -> None:
    page.goto(served.url + "/")  # type: ignore[attr-defined]
    over = page.wait_for_selector("#chart .u-over")  # type: ignore[attr-defined]
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2)  # type: ignore[attr-defined]
    tip = page.locator("#tip")  # type: ignore[attr-defined]
    tip.wait_for(state="visible", timeout=5_000)
    assert "#5" in tip.inner_text() and "set the score to 3.0" in tip.inner_text()


def test_kept_experiments_diff_shows_the_changed_line(served: Served, page: object) -> None:
    page.goto(served.url + "/experiments/5")  # type: ignore[attr-defined]
    page.wait_for_selector("#diff")  # type: ignore[attr-defined]
    added = page.locator("#diff .add").all_inner_texts()  # type: ignore[attr-defined]
    removed = page.locator("#diff .del").all_inner_texts()  # type: ignore[attr-defined]
    assert "+score: 3.0" in added and "-score: 4.0" in removed
    assert "beats" in page.locator("#reason").inner_text()  # type: ignore[attr-defined]
    assert "(keep)" in page.locator("#lesson").inner_text()  # type: ignore[attr-defined]
    assert page.locator("#samples circle").count() == 2  # type: ignore[attr-defined]


def test_table_filters_by_status_and_searches(served: Served, page: object) -> None:
    page.goto(served.url + "/experiments")  # type: ignore[attr-defined]
    page.wait_for_selector(".vt .row")  # type: ignore[attr-defined]
    rows = page.locator(".vt .row")  # type: ignore[attr-defined]
    assert rows.count() == 6
    page.locator(".chip[data-status=keep]").click()  # type: ignore[attr-defined]
    assert [r.get_attribute("data-id") for r in rows.all()] == ["2", "5"]
    page.fill("#q", "3.0")  # type: ignore[attr-defined]
    assert [r.get_attribute("data-id") for r in rows.all()] == ["5"]


def test_row_finished_by_a_concurrent_run_appears_within_2_s(
    served: Served, study: Path, page: object
) -> None:
    page.goto(served.url + "/experiments")  # type: ignore[attr-defined]
    page.wait_for_selector(".vt .row")  # type: ignore[attr-defined]
    page.select_option("#ftag", "")  # all tags: the run below starts a new one  # type: ignore[attr-defined]
    replay = proposals(study.parent / "more.jsonl", [3.2])
    run = subprocess.Popen(
        [sys.executable, "-m", "ratchet", "run", str(study), "--tag", "t9", "--proposer",
         "replay", "--replay", str(replay), "--max-experiments", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        late = _wait_for_outcome(study, 8)  # 7 is the new tag's baseline, 8 its keep
        pill = page.locator('.vt .row[data-id="8"] .pill')  # type: ignore[attr-defined]
        pill.filter(has_text="keep").wait_for(timeout=max(1, 2_000 - late * 1000))
        # the DOM changed without a navigation: the page never reloaded
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # type: ignore[attr-defined]
    finally:
        assert run.wait(timeout=60) == 0


def _wait_for_outcome(study: Path, exp_id: int) -> float:
    """Poll the ledger (read-only) until ``exp_id`` has an outcome; return how late we saw it."""
    uri = f"file:{study / '.ratchet' / 'ledger.sqlite'}?mode=ro"
    deadline = time.time() + 60
    while time.time() < deadline:
        db = sqlite3.connect(uri, uri=True)
        try:
            row = db.execute(
                "SELECT created_at FROM outcomes WHERE experiment_id = ?", (exp_id,)
            ).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            db.close()
        if row:
            return time.time() - row[0]
        time.sleep(0.02)
    raise AssertionError(f"experiment {exp_id} never finished")


SLOW = """\
import json, time
for step in range(1, 7):
    print(json.dumps({"progress": step / 6, "score": 7 - step}), flush=True)
    print(f"step {step} of 6", flush=True)
    time.sleep(0.4)
print("score: 1")
"""


def test_live_page_shows_a_running_experiment_with_its_log_tail(
    tmp_path: Path, page: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import FAST_TOML, make_repo

    toml = FAST_TOML.replace('"cat value.txt"', '"python -u slow.py"').replace(
        'editable = ["value.txt"]', 'editable = ["slow.py"]'
    )
    study = make_repo(
        tmp_path / "slow",
        {"ratchet.toml": toml, "program.md": "x\n", "slow.py": SLOW, "check.sh": "echo\n"},
    )
    with serve(study) as server:
        page.goto(server.url + "/live")  # type: ignore[attr-defined]
        page.wait_for_selector("#recent")  # type: ignore[attr-defined]
        run = subprocess.Popen(
            [sys.executable, "-m", "ratchet", "run", str(study), "--proposer", "mutate",
             "--max-experiments", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            card = page.locator('#running [data-id="1"]')  # type: ignore[attr-defined]
            card.locator(".log", has_text="step 2 of 6").wait_for(timeout=15_000)
            assert "% of the budget" in card.inner_text()
            bar = card.locator(".progress span").get_attribute("style")
            assert bar and "width:0%" not in bar.replace(" ", "")
            # when it finishes it leaves the running list and tops the finished one
            page.locator("#recent tr", has_text="baseline").wait_for(timeout=15_000)
            assert page.locator('#running [data-id="1"]').count() == 0  # type: ignore[attr-defined]
        finally:
            assert run.wait(timeout=60) == 0


def test_the_printed_token_url_opens_the_dashboard_beyond_the_default_address(
    study: Path, page: object
) -> None:
    with serve(study, "--host", "127.0.0.2") as server:
        denied = page.goto(server.url + "/")  # type: ignore[attr-defined]
        assert denied.status == 401
        page.goto(f"{server.url}/?token={server.token}")  # type: ignore[attr-defined]
        page.wait_for_selector("#chart canvas")  # type: ignore[attr-defined]
        assert page.url == server.url + "/"  # the token left the address bar for a cookie
        page.locator("#conn.ok").wait_for(timeout=5_000)  # type: ignore[attr-defined]
