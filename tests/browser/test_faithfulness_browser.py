"""The faithfulness check in a real browser: open the expander, run the check, see both sweeps and the curves.

Run with `pytest -m browser tests/test_faithfulness_browser.py`; skipped when chromium or Playwright is missing.
A screenshot lands in test-artifacts/faithfulness.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from page_driver import ARTIFACTS, RENDER_TIMEOUT_MS, launch, wait_heatmap

PLOT_TITLES_JS = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".map(p => (p.layout && p.layout.title && p.layout.title.text) || '')"
)

pytestmark = pytest.mark.browser


def test_open_and_run_the_faithfulness_check(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 2400})
            page.goto(server)
            wait_heatmap(page)
            page.get_by_text("Faithfulness: does the map say what the model needs?").click()
            run = page.get_by_role("button", name="Run the check")
            run.wait_for(timeout=30_000)
            # what a user may change before running: drop instead of mask, words, pair order, fewer random draws
            page.locator(".st-key-fa_op").get_by_role("radio", name="drop", exact=True).click()
            page.locator(".st-key-fa_level").get_by_role("radio", name="words", exact=True).click()
            page.locator(".st-key-fa_order").get_by_role("radio", name="by cells (word pairs)").click()
            page.locator(".st-key-fa_draws input").fill("3")
            page.locator(".st-key-fa_draws input").press("Tab")
            run.click()
            page.wait_for_function(
                f"() => ({PLOT_TITLES_JS})().some(t => t.includes('Deletion and insertion curves'))",
                timeout=RENDER_TIMEOUT_MS,
            )
            page.wait_for_timeout(800)
            titles = page.evaluate(PLOT_TITLES_JS)
            sweeps = [t for t in titles if "Spearman" in t]
            assert len(sweeps) == 2, titles
            assert "integrated Jacobians" in sweeps[0] and "2nd method" in sweeps[1]
            assert page.get_by_text("what the model loses without each word").first.is_visible()  # words chosen
            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="Report (JSON)").click()
            target = tmp_path / info.value.suggested_filename
            info.value.save_as(target)
            curves = json.loads(target.read_text(encoding="utf-8"))["curves"]
            chosen = {k: curves.get(k) for k in ("op", "level", "order", "draws")}
            assert chosen == {"op": "drop", "level": "word", "order": "pair", "draws": 3}, chosen
            page.screenshot(path=str(ARTIFACTS / "faithfulness.png"), full_page=True)
        finally:
            browser.close()
