"""The Rank page in a real browser (issue 25): type a query, upload candidates, rank them, open the
"why B over A?" contrast. Debian chromium via Playwright against `streamlit run app.py`.

Run with `pytest -m browser tests/browser/test_rank_browser.py`; skipped when /usr/bin/chromium or
Playwright is missing. A screenshot lands in test-artifacts/rank.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from downloads import download_everything
from page_driver import ARTIFACTS, RENDER_TIMEOUT_MS, launch, serve, wait_heatmap

QUERY = "How do cats spend the day?"
CANDIDATES = ["Dogs bark at the mailman.", "Cats sleep for most of the day.", "The stock market fell sharply."]
BAR_TYPES_JS = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(p => (p.data || []).map(t => t.type))"
)

pytestmark = pytest.mark.browser


def pick(page, key: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Choose `option` in the selectbox with this key, as a user does (open it, click the option)."""
    page.locator(f".st-key-{key} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_rank_uploaded_candidates_and_open_a_contrast(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    upload = tmp_path / "candidates.json"
    upload.write_text(json.dumps(CANDIDATES), encoding="utf-8")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1600})
            page.goto(server)  # the sidebar's link opens the page, as a user gets there
            wait_heatmap(page)  # as a user who has seen it; a click during its first imports: the test below
            page.get_by_role("link", name="Rank candidates").click(timeout=RENDER_TIMEOUT_MS)
            query = page.locator(".st-key-rank_query textarea")
            try:
                query.wait_for(timeout=RENDER_TIMEOUT_MS)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "rank-page-not-shown.png"), full_page=True)
                raise
            page.locator(".st-key-rank_upload input[type='file']").set_input_files(str(upload))
            page.get_by_text("candidates.json").wait_for(timeout=RENDER_TIMEOUT_MS)
            query.fill(QUERY)
            query.press("Tab")
            page.locator(".st-key-rank_go button").click()

            # the ranked list, then the contrast controls
            page.get_by_text("Why B over A?").wait_for(timeout=RENDER_TIMEOUT_MS)
            page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=RENDER_TIMEOUT_MS)  # the ranked list
            pick(page, "rank_why_a", CANDIDATES[0])
            pick(page, "rank_why_b", CANDIDATES[1])
            page.locator(".st-key-rank_why_go button").click()
            page.wait_for_function(f"() => ({BAR_TYPES_JS})().includes('bar')", timeout=RENDER_TIMEOUT_MS)
            assert page.evaluate(BAR_TYPES_JS) == ["bar", "bar"]
            title = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.title.text")
            assert "Why #1 outranks #" in title
            page.get_by_text("Score gap").first.wait_for(timeout=RENDER_TIMEOUT_MS)
            assert "why=" in page.url and "q=How" in page.url  # the view is in the shareable address
            page.screenshot(path=str(ARTIFACTS / "rank.png"), full_page=True)

            # the contrast's Export menu: every file downloads and opens (the query's words are in the SVGs)
            export = page.locator("[data-testid=stPopover] button").filter(has_text="Export").first
            found = download_everything(page, export, tmp_path, words=("cats",))
            kinds = {name.rsplit(".", 1)[-1] for name in found}
            assert {"png", "svg", "json"} <= kinds and any("_slide" in name for name in found), found

            # a candidate's map on demand
            pick(page, "rank_map_pick", CANDIDATES[2])
            page.locator(".st-key-rank_map_go button").click()
            page.wait_for_function(f"() => ({BAR_TYPES_JS})().includes('heatmap')", timeout=RENDER_TIMEOUT_MS)
            page.get_by_text("by all-MiniLM-L6-v2, score").first.wait_for(timeout=RENDER_TIMEOUT_MS)

            # no prompts: ranked again, and the link says so
            page.get_by_text("No prompts", exact=True).click()
            page.locator(".st-key-rank_go button").click()
            page.wait_for_function("() => location.search.includes('prompts=none')", timeout=RENDER_TIMEOUT_MS)
            page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=RENDER_TIMEOUT_MS)
        finally:
            browser.close()


def test_two_visitors_on_a_freshly_started_server_both_get_their_page() -> None:
    """The explainer and the rank page opened at once on a server that has not imported the library yet:
    both pages draw, with no error (two first runs importing the library at once used to fail both pages
    about one time in four; tests/page/test_overlapping_runs.py holds the deterministic case)."""
    from playwright.sync_api import sync_playwright

    with serve() as url, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            explainer, ranker = context.new_page(), context.new_page()
            explainer.goto(url, wait_until="commit")
            ranker.goto(f"{url}/Rank", wait_until="commit")
            ranker.locator(".st-key-rank_query textarea").wait_for(timeout=RENDER_TIMEOUT_MS)
            wait_heatmap(explainer)
            for page in (explainer, ranker):
                assert page.get_by_text("This app has encountered an error").count() == 0
                assert page.locator("[data-testid=stException]").count() == 0
        finally:
            browser.close()
