"""The page in a real browser: Debian chromium driven by Playwright against `streamlit run app.py`.

Run with `pytest -m browser tests/browser/test_browser.py`; skipped when /usr/bin/chromium or
Playwright is missing. A screenshot lands in test-artifacts/page.png.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from page_driver import (
    ARTIFACTS,
    COLUMN_TICKS_JS,
    MAP_PAINTED_MARK_JS,
    RENDER_TIMEOUT_MS,
    TICKS_JS,
    heatmap_matrix,
    launch,
    map_painted_ms,
    open_sessions,
    pair_url,
    row_labels,
    wait_heatmap,
)

pytestmark = pytest.mark.browser


def test_heatmap_hover_slider_and_screenshot(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1500})
            page.goto(server)
            page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=RENDER_TIMEOUT_MS)
            page.get_by_text("the top 5 pairs carry").wait_for(timeout=RENDER_TIMEOUT_MS)

            # The default pair with MiniLM: 11 rows ([CLS] A man is playing a guitar on stage . [SEP])
            # and 9 columns ([CLS] Someone performs music with an instrument . [SEP]).
            drag = page.locator(".js-plotly-plot .nsewdrag").first
            box = drag.bounding_box()
            assert box is not None
            row, col, n_rows, n_cols = 6, 6, 11, 9  # guitar – instrument
            page.mouse.move(
                box["x"] + (col + 0.5) * box["width"] / n_cols, box["y"] + (row + 0.5) * box["height"] / n_rows
            )
            hover = page.locator(".hoverlayer .hovertext").first
            hover.wait_for(timeout=10_000)
            text = hover.text_content() or ""
            assert "guitar – instrument" in text
            assert "share of the sum" in text and "POS NOUN / NOUN" in text
            assert re.search(r"value \+0\.\d{4}", text)

            slider = page.get_by_role("slider").first
            slider.focus()
            for _ in range(3):
                slider.press("ArrowRight")
            page.get_by_text("the top 8 pairs carry").wait_for(timeout=60_000)
            page.wait_for_timeout(800)
            outlines = page.locator(".js-plotly-plot .shapelayer path")
            assert outlines.count() >= 8

            page.mouse.move(5, 5)
            page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
            assert (ARTIFACTS / "page.png").stat().st_size > 20_000
        finally:
            browser.close()


def test_the_benchmarks_first_map_mark_is_set_when_the_map_is_painted(server: str) -> None:
    """benchmarks/ time a new session's first map by MAP_PAINTED_MARK_JS: set in the page's clock after the
    app's scripts ran and the heatmap exists, and not set on a page that draws no map."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_init_script(MAP_PAINTED_MARK_JS)
            page = context.new_page()
            page.goto(pair_url(server, "", "Someone plays music."))
            page.get_by_text("Text A is empty").first.wait_for(timeout=RENDER_TIMEOUT_MS)
            page.wait_for_timeout(500)
            assert page.evaluate("window.__plMapPaintedMs") is None
            assert page.locator(".js-plotly-plot").count() == 0

            page = context.new_page()
            page.goto(server)
            painted = map_painted_ms(page)
            loaded = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
            assert loaded < painted <= page.evaluate("performance.now()")
            assert page.locator(".js-plotly-plot .nsewdrag").count() >= 1
        finally:
            browser.close()


def test_a_new_visitor_sees_the_score_and_the_map_in_the_first_screen(server: str) -> None:
    """At 1440 x 900 (a laptop screen), the default page as `make run` serves it (bound to localhost, so a
    line says how to type any model; all-mpnet-base-v2 listed, installed or not): a new session sees the score
    card and the top of the first map (its title, colour legend and column totals) without scrolling;
    "How to read the map" opens its explanation, with and without results; the model line's help says how
    to type a model and how to install a listed one."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.goto(server)
            wait_heatmap(page)
            page.wait_for_timeout(500)  # the layout settles (fonts, the score card's bars)
            figure = page.locator(".js-plotly-plot").first.bounding_box()
            score = page.locator(".pl-score-value").first.bounding_box()
            assert figure is not None and score is not None
            assert figure["y"] <= 900 - 120, f"the map starts {figure['y']:.0f} px down the 900 px screen"
            assert score["y"] + score["height"] <= 900, "the score is below the fold"
            page.get_by_role("button", name="How to read the map").click(timeout=RENDER_TIMEOUT_MS)
            page.get_by_text("Integrated Jacobians (Moeller et al., EMNLP 2023)").wait_for(timeout=RENDER_TIMEOUT_MS)
            page.keyboard.press("Escape")

            # the one line on other models: its help holds the example hub id and each install command
            sources = page.locator("[data-testid=stElementContainer]", has_text="Or type a Hugging Face hub id").last
            sources.locator("[data-testid=stTooltipHoverTarget]").hover()
            tip = page.locator("[data-testid=stTooltipContent]").first
            tip.get_by_text("sentence-transformers/all-distilroberta-v1", exact=False).wait_for(timeout=30_000)
            if "Not installed" in sources.inner_text():
                assert "make mpnet" in tip.inner_text()

            # with nothing to show (text A empty) "How to read the map" stands alone and opens as well
            page.goto(pair_url(server, "", "Someone plays music."))
            page.get_by_text("Text A is empty").first.wait_for(timeout=RENDER_TIMEOUT_MS)
            page.get_by_role("button", name="How to read the map").click(timeout=RENDER_TIMEOUT_MS)
            page.get_by_text("Integrated Jacobians (Moeller et al., EMNLP 2023)").wait_for(timeout=RENDER_TIMEOUT_MS)
        finally:
            browser.close()


def test_user_text_shows_literally_in_tick_labels(server: str) -> None:
    """Escaped tokens render as the characters typed: no markup, no visible entities."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.goto(pair_url(server, "Tom & Jerry < Spike", "cats and <b>mice</b>", top="0"))
            page.wait_for_selector(".js-plotly-plot .ytick text", timeout=RENDER_TIMEOUT_MS)
            rows = page.locator(".js-plotly-plot .yaxislayer-above .ytick text").all_text_contents()
            columns = page.locator(".js-plotly-plot .xaxislayer-above .xtick text").all_text_contents()
            assert "&" in rows and "<" in rows, rows
            assert "<" in columns and "mice" in columns, columns
            assert not any("&amp;" in t or "&lt;" in t for t in rows + columns)
            bold = page.locator(".js-plotly-plot .xaxislayer-above .xtick tspan[style*='bold']")
            assert bold.count() == 0
        finally:
            browser.close()


MARKUP_A = '<script>alert("a")</script> <a href="javascript:alert(1)">link</a> <img src=x onerror=alert(2)>'
MARKUP_B = '**bold** [click](javascript:alert(3)) <b>mice</b> <svg onload=alert(4)> &amp; "quoted"'


def test_user_markup_never_becomes_live_html(server: str, minilm) -> None:  # type: ignore[no-untyped-def]
    """Tags typed by a user show as text in the labels, hovers, captions and the exported HTML."""
    from playwright.sync_api import sync_playwright

    from attribution.viz.exports import figure_html
    from attribution.viz.heatmap import build_heatmap, chart_config

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(pair_url(server, MARKUP_A, MARKUP_B, pos="1", top="5"))
            wait_heatmap(page)
            page.get_by_text("the top 5 pairs carry").wait_for(timeout=RENDER_TIMEOUT_MS)
            injected = page.evaluate(
                """() => ({
                    links: [...document.querySelectorAll('.js-plotly-plot a')].map(a => a.getAttribute('href')),
                    images: document.querySelectorAll('img[src="x"]').length,
                    svgs: document.querySelectorAll('svg[onload]').length,
                    scripts: [...document.scripts].filter(s => s.textContent.includes('alert(')).length,
                    bold: document.querySelectorAll('.js-plotly-plot tspan[style*="bold"]').length,
                })"""
            )
            assert injected["links"] == [] and injected["images"] == 0 and injected["svgs"] == 0, injected
            assert injected["scripts"] == 0, injected
            assert injected["bold"] <= 1, injected  # the figure title's model name only
            ticks = page.locator(".js-plotly-plot .ytick text, .js-plotly-plot .xtick text").all_text_contents()
            shown = " ".join(ticks)  # what the browser draws, not the escaped source
            assert "<" in shown and '"' in shown and "&lt;" not in shown and "&quot;" not in shown

            drag = page.locator(".js-plotly-plot .nsewdrag").first
            box = drag.bounding_box()
            assert box is not None
            n_rows, n_cols = len(row_labels(page)), len(heatmap_matrix(page)[0])
            page.mouse.move(box["x"] + 1.5 * box["width"] / n_cols, box["y"] + 1.5 * box["height"] / n_rows)
            hover = page.locator(".hoverlayer .hovertext").first
            hover.wait_for(timeout=10_000)
            assert "<" in (hover.text_content() or "") and page.locator(".hoverlayer a").count() == 0

            # The exported standalone HTML, opened in the same browser.
            from attribution import explain

            result = explain(minilm, MARKUP_A, MARKUP_B, steps=4)
            fig = build_heatmap(result, top_k=5, pos_overlay=True)
            exported = browser.new_page()
            exported.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            exported.set_content(figure_html(fig, chart_config(fig, "pairlens")), wait_until="load")
            exported.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=60_000)
            assert exported.locator(".js-plotly-plot a, img[src='x'], svg[onload]").count() == 0
            exported_ticks = exported.locator(".ytick text").all_text_contents()
            assert any(t.startswith("<") for t in exported_ticks) and not any("&lt;" in t for t in exported_ticks)
            page.wait_for_timeout(500)
            assert dialogs == [], dialogs
        finally:
            browser.close()


CONCURRENT_PAIRS = [
    ("A man is slicing a tomato.", "Someone cuts a vegetable."),
    ("Two dogs run across the snowy field.", "Puppies are playing in the snow."),
    ("The stock market fell sharply today.", "Shares dropped after the report."),
    ("How do I reset my password?", "I forgot my login details."),
    ("A child reads a book in the library.", "A kid is studying quietly."),
    ("The train was delayed by the storm.", "Bad weather held up the railway."),
    ("She plays the violin beautifully.", "Her guitar is out of tune."),
    ("The recipe needs two cups of flour.", "The satellite orbits Mars."),
]


def test_eight_sessions_at_once_match_single_session_results(server: str, minilm) -> None:  # type: ignore[no-untyped-def]
    """Eight browser sessions computing at once each get exactly the single-session result."""
    from playwright.sync_api import sync_playwright

    from attribution import explain

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            pages = open_sessions(browser, server, CONCURRENT_PAIRS)
            for page, (text_a, _) in zip(pages, CONCURRENT_PAIRS, strict=True):
                wait_heatmap(page, text_a.split()[1])
            for page, (text_a, text_b) in zip(pages, CONCURRENT_PAIRS, strict=True):
                expected = explain(minilm, text_a, text_b)
                assert row_labels(page) == expected.a.tokens  # no other session's text
                assert page.get_by_label("Text A — rows").input_value() == text_a
                assert page.get_by_label("Text B — columns").input_value() == text_b
                np.testing.assert_allclose(np.array(heatmap_matrix(page)), expected.matrix, rtol=1e-5, atol=1e-7)
        finally:
            browser.close()


# ----------------------------------------------------------------------------- page v2

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "while",
    "his",
    "dog",
    "ran",
    "in",
    "the",
    "park",
    "and",
    "two",
    "birds",
    "sang",
    "near",
    "an",
    "old",
    "tree",
    "by",
    "our",
    "small",
    "house",
    "with",
    "red",
    "doors",
    "so",
    "every",
    "child",
    "could",
    "see",
    "how",
    "green",
    "fields",
    "grow",
    "under",
    "warm",
    "sun",
    "each",
    "day",
    "when",
    "rain",
    "falls",
    "over",
    "hills",
    "then",
    "rivers",
    "flow",
    "down",
    "to",
    "blue",
    "sea",
    "far",
    "away",
    "from",
    "town",
]


def sixty_tokens(shift: int) -> str:
    """58 common one-token words: with [CLS] and [SEP], 60 tokens for MiniLM."""
    words = WORDS[shift:] + WORDS[:shift]
    return " ".join((words * 2)[:58])


LABEL_BOXES_JS = """(sel) => [...document.querySelectorAll(sel)].map(t => {
  const r = t.getBoundingClientRect(); return {text: t.textContent, x: r.x, y: r.y, w: r.width, h: r.height};
})"""


def overlaps(boxes: list[dict], slack: float = 0.5) -> list[tuple[str, str]]:
    """Pairs of boxes that intersect by more than `slack` px in both directions."""
    found = []
    for k, a in enumerate(boxes):
        for b in boxes[k + 1 :]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > slack and dy > slack:
                found.append((a["text"], b["text"]))
    return found


def test_sixty_by_sixty_map_shows_every_tick_label_without_overlap(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            page.goto(pair_url(server, sixty_tokens(0), sixty_tokens(7), top="5", pos="1"))
            wait_heatmap(page)
            page.wait_for_function(f"() => ({TICKS_JS})().length === 60", timeout=RENDER_TIMEOUT_MS)
            page.wait_for_timeout(1500)
            plot = ".js-plotly-plot"
            rows = page.evaluate(LABEL_BOXES_JS, f"{plot} .yaxislayer-above .ytick text")
            cols = page.evaluate(LABEL_BOXES_JS, f"{plot} .xaxislayer-above .xtick text")
            tops = page.evaluate(LABEL_BOXES_JS, f"{plot} .x6tick text")  # repeated on top
            assert len(rows) == 60 and len(cols) == 60 and len(tops) == 60, (len(rows), len(cols), len(tops))
            assert [b["text"] for b in tops] == [b["text"] for b in cols]
            assert all(b["w"] > 0 and b["h"] > 0 for b in rows + cols + tops)
            assert overlaps(rows) == [] and overlaps(cols) == [] and overlaps(tops) == []
            assert max(b["y"] + b["h"] for b in tops) < min(b["y"] for b in rows)  # above the map's first row
            svg = page.locator(f"{plot} .main-svg").first.bounding_box()
            assert svg is not None
            for b in rows + cols + tops:  # inside the figure: nothing cut at its edges
                assert svg["x"] - 0.5 <= b["x"] and b["x"] + b["w"] <= svg["x"] + svg["width"] + 0.5, b
                assert svg["y"] - 0.5 <= b["y"] and b["y"] + b["h"] <= svg["y"] + svg["height"] + 0.5, b
            drag = page.locator(f"{plot} .nsewdrag").first.bounding_box()
            assert drag is not None and abs(drag["width"] - drag["height"]) < 2  # square cells
            assert drag["width"] / 60 >= 13
            page.screenshot(path=str(ARTIFACTS / "page-60x60.png"), full_page=True)
        finally:
            browser.close()


CLIPPED_JS = """(rootSelector) => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const root of document.querySelectorAll(rootSelector)) {
    for (const el of root.querySelectorAll('*')) {
      if (el.children.length || !el.textContent.trim()) continue;
      const r = el.getBoundingClientRect();
      if (!r.width) continue;
      let cut = r.right > width + 0.5
        || (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible');
      for (let a = el.parentElement; a && !cut && a !== root.parentElement; a = a.parentElement) {
        const s = getComputedStyle(a);
        if (s.overflowX === 'visible') continue;
        const b = a.getBoundingClientRect();
        cut = r.right > b.right + 1 || r.left < b.left - 1
          || (a.scrollWidth > a.clientWidth + 1 && s.textOverflow === 'ellipsis');
      }
      if (cut) out.push(el.textContent.trim());
    }
  }
  return out;
}"""
CONTROLS = ".st-key-pl-toolbar, .st-key-pl-inputs-row, [data-testid=stSelectbox], [data-testid=stButton]"


def test_every_control_is_unclipped_at_1000_px_with_the_sidebar_open(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.goto(pair_url(server, "A man is playing a guitar on stage.", "Someone performs music."))
            wait_heatmap(page)
            page.wait_for_timeout(1000)
            assert page.locator("[data-testid=stSidebar]").bounding_box()["width"] > 200  # the sidebar is open
            controls = [page.get_by_role("button", name="Explain", exact=True)]
            controls += [
                page.get_by_role("radio", name=n, exact=True) for n in ("Words", "Tokens", "Map", "Strongest links")
            ]
            for control in controls:
                box = control.first.bounding_box()
                name = control.first.text_content()
                assert box is not None and box["x"] + box["width"] <= 1000, name
            for label in ("POS overlay", "Special tokens", "Shared colour scale", "Top pairs"):
                assert page.locator(".st-key-pl-toolbar").get_by_text(label, exact=True).is_visible(), label
            assert page.evaluate(CLIPPED_JS, CONTROLS) == []
        finally:
            browser.close()


def test_exact_mode_shows_the_models_cosine_and_a_warning(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            page.goto(f"{server}/?mode=exact")
            wait_heatmap(page)
            card = page.locator(".pl-card").first
            card.wait_for(timeout=RENDER_TIMEOUT_MS)
            headline = page.locator(".pl-score-value").all_text_contents()
            assert headline[0] == "0.573" and headline[1] == "0.829", headline
            assert page.get_by_text("was not trained for exact mode").is_visible()
            title = page.locator(".js-plotly-plot .gtitle").first.text_content() or ""
            assert "cosine 0.573" in title
        finally:
            browser.close()


def test_a_layer_change_with_unsubmitted_text_explains_the_shown_text(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            page.goto(pair_url(server, "A man is playing a guitar on stage.", "Someone performs music."))
            wait_heatmap(page, "guitar")
            box = page.get_by_label("Text A — rows")
            box.fill("Two children laugh in the garden.")
            box.press("Tab")  # the box loses focus: the typed text reaches the server
            page.get_by_text("Text A changed and is not explained yet").wait_for(timeout=60_000)
            # nothing recomputed by typing: the map (redrawn by the rerun the box's change causes) shows the old text
            page.wait_for_function(f"() => ({TICKS_JS})().includes('guitar')", timeout=RENDER_TIMEOUT_MS)
            assert "children" not in row_labels(page)
            page.locator("[data-testid=stSelectbox]").filter(has_text="Layer").click()
            page.get_by_role("option", name="3", exact=True).click()
            page.wait_for_function(f"() => ({TICKS_JS})().includes('children')", timeout=RENDER_TIMEOUT_MS)
            page.wait_for_function("() => document.title && location.search.includes('children')", timeout=60_000)
            assert "layer 3 of 6" in (page.locator(".js-plotly-plot .gtitle").first.text_content() or "")
            assert page.get_by_text("not explained yet").count() == 0

            other = page.get_by_label("Text B — columns")
            other.fill("Kids are playing outside.")
            other.press("Control+Enter")  # submits like Explain
            page.wait_for_function(f"() => ({COLUMN_TICKS_JS})().includes('Kids')", timeout=RENDER_TIMEOUT_MS)
        finally:
            browser.close()


def test_ctrl_enter_explains_in_a_narrow_window_with_the_sidebar_collapsed(server: str) -> None:
    """The shortcut's script is drawn in the sidebar (no gap above the maps); a phone-sized window collapses
    the sidebar, and Ctrl+Enter still explains the typed text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 700, "height": 900})
            page.goto(server)
            wait_heatmap(page)
            assert page.locator("[data-testid=stSidebar]").get_attribute("aria-expanded") != "true"
            box = page.get_by_label("Text B — columns")
            box.fill("Kids are playing outside.")
            box.press("Control+Enter")
            page.wait_for_function(f"() => ({COLUMN_TICKS_JS})().includes('Kids')", timeout=RENDER_TIMEOUT_MS)
        finally:
            browser.close()
