"""Steering from the dashboard in a real browser (Playwright driving Debian's Chromium).

Skipped, with the reason printed, only where Chromium is not installed; Playwright's
own browser download is never used.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from llm_servers import ScriptedLLM
from test_steering import _prompts, _run, _score, _study, llm  # noqa: F401 (a fixture)
from ui_helpers import serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed (apt-get install chromium); the browser tests need it",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


def test_a_note_typed_in_the_dashboard_reaches_the_next_prompt(
    tmp_path: Path, llm: pytest.MonkeyPatch  # noqa: F811
) -> None:
    root = _study(tmp_path)
    with ScriptedLLM([_score(9, 8)]) as server:
        assert _run(root, server, llm, "--max-experiments", "0").returncode == 0
        with serve(root) as ui, playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(ui.url + "/")
                page.fill("#note-text", "BROWSER-NOTE-MARKER try fewer layers")
                page.click("#note-send")
                said = page.locator("#steer-said")  # polled without eval: the page's CSP forbids it
                playwright_api.expect(said).to_contain_text("recorded")
                assert "note #1 recorded for tag main" in page.inner_text("#steer-said")
                page.click("#btn-pause")  # nothing runs: the dashboard says so, nothing breaks
                playwright_api.expect(said).to_contain_text("not running")
                shot = tmp_path / "steer.png"
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000 and not errors, errors
            finally:
                browser.close()
        assert _run(root, server, llm, "--max-experiments", "1").returncode == 0
    assert "BROWSER-NOTE-MARKER try fewer layers" in _prompts(server)[0]
