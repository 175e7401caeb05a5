"""Page v3 in a real browser (Debian chromium via Playwright): every download opened, models side by side.

One server per module (two models: the packaged MiniLM and a tiny BERT folder, custom models allowed).
Run with `pytest -m browser tests/browser/test_browser_page.py`; skipped when chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from downloads import download_everything
from page_driver import RENDER_TIMEOUT_MS, TICKS_JS, launch, pair_url, serve

ROOT = Path(__file__).resolve().parents[2]
AXE_VERSION = "4.14.1"  # .ci/run installs this into tests/node_modules
AXE_PATHS = [ROOT / "tests" / "node_modules" / "axe-core" / "axe.min.js"]
TEXT_A = "A man is playing a guitar on stage."
TEXT_B = "Someone performs music with an instrument."

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tiny_bert(tiny_models: Any) -> Path:
    return Path(tiny_models["bert"])


@pytest.fixture(scope="module")
def server(tiny_bert: Path, browser_available: None, page_home: dict[str, str]) -> Iterator[str]:
    """The page on a free local port, custom model folders allowed (a one-person local run)."""
    with serve(env={**page_home, "PAIRLENS_ALLOW_CUSTOM_MODELS": "1"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def two_model_url(server: str, tiny_bert: Path, **params: str) -> str:
    from urllib.parse import urlencode

    query = urlencode([("a", TEXT_A), ("b", TEXT_B), ("model", "all-MiniLM-L6-v2"), ("model", str(tiny_bert))])
    extra = urlencode(params)
    return f"{server}/?{query}" + (f"&{extra}" if extra else "")


def wait_maps(page: Any, count: int) -> None:
    """Until `count` heatmaps are drawn."""
    page.wait_for_function(
        f"() => document.querySelectorAll('.js-plotly-plot .nsewdrag').length >= {count}", timeout=RENDER_TIMEOUT_MS
    )


def test_every_format_of_every_download_menu_downloads_and_opens(
    server: str, tiny_bert: Path, browser: Any, tmp_path: Path
) -> None:
    """Each model's menu, 'Download all side by side' and the difference map's menu: every file opens."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
    try:
        page.goto(two_model_url(server, tiny_bert, top="3"))
        wait_maps(page, 3)  # two models and the difference map
        menus = page.locator("[data-testid=stPopover] > div > button, [data-testid=stPopover] button").filter(
            has_text="Download"
        )
        names = [t.strip() for t in menus.all_inner_texts()]
        assert sum("Download all side by side" in n for n in names) == 1, names
        assert len(names) >= 4, names  # two models, the combined figure, the difference map
        everything: dict[str, str] = {}
        for index in range(len(names)):
            everything.update(download_everything(page, menus.nth(index), tmp_path))
        kinds = {name.rsplit(".", 1)[-1] for name in everything}
        assert {"png", "svg", "pdf", "html", "csv", "json"} <= kinds, everything
        combined = [name for name in everything if "_combined" in name]
        assert any(n.endswith("_slide.png") for n in combined) and any(n.endswith(".html") for n in combined)
        print(json.dumps(everything, indent=1))
    finally:
        page.close()


def test_the_what_if_download_menu_downloads_and_opens(server: str, browser: Any, tmp_path: Path) -> None:
    """The what-if section's own menu (shown once an edit exists): every file opens."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100}, accept_downloads=True)
    try:
        page.goto(pair_url(server, TEXT_A, TEXT_B, tool="whatif", edit="a:2-5:drop"))
        page.get_by_role("button", name="Explain the edited pair").wait_for(timeout=RENDER_TIMEOUT_MS)
        menus = page.locator("[data-testid=stPopover] button").filter(has_text="Download")
        found = download_everything(page, menus.last, tmp_path)
        assert any("whatif" in name and name.endswith(".png") for name in found), found
    finally:
        page.close()


MAP_BOXES_JS = """() => [...document.querySelectorAll('.st-key-pl-models .js-plotly-plot')].map(d => {
  const r = d.getBoundingClientRect(); return {x: r.x, y: r.y + window.scrollY, w: r.width, h: r.height};
})"""


@pytest.mark.parametrize("width", [1440, 1000])
def test_two_models_sit_side_by_side_from_1200_px_and_stack_below(
    server: str, tiny_bert: Path, browser: Any, width: int
) -> None:
    """At 1440 px the two maps share a row (disjoint x, overlapping y); at 1000 px one is below the other."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    try:
        page.goto(two_model_url(server, tiny_bert, top="3"))
        wait_maps(page, 2)
        page.wait_for_timeout(1000)
        first, second = page.evaluate(MAP_BOXES_JS)[:2]
        x_overlap = min(first["x"] + first["w"], second["x"] + second["w"]) - max(first["x"], second["x"])
        y_overlap = min(first["y"] + first["h"], second["y"] + second["h"]) - max(first["y"], second["y"])
        if width >= 1200:
            assert x_overlap < 0 and y_overlap > 0.5 * first["h"], (first, second)
            for box in (first, second):
                assert box["x"] + box["w"] <= width, box  # both maps whole on screen
            bars = page.locator(".st-key-pl-models .js-plotly-plot .colorbar .cbtitle").all_text_contents()
            assert any("shared by 2 models" in t for t in bars), bars
            explained = page.locator(".pl-explained-head").all_inner_texts()
            assert len(explained) == 2 and all(re.search(r"The map explains \d+ % of the score", t) for t in explained)
        else:
            assert x_overlap > 0 and first["y"] + first["h"] <= second["y"], (first, second)
    finally:
        page.close()


LONG_A = "The old fisherman walked slowly down to the harbour at dawn, carrying his nets and a flask of tea."
LONG_B = (
    "At first light an elderly man who had fished these waters all his life made his way to the quay with his gear "
    "and a hot drink, greeting the gulls as he went along the wet stones."
)
# Each map's visible part (its box cut by every scrolling or clipping ancestor and the window), its own width,
# and the boxes of its colour bar and of its row totals' bars (on the x4 axis, beside the map's rows).
KEYS_IN_VIEW_JS = """() => [...document.querySelectorAll('.st-key-pl-models .js-plotly-plot')].map(plot => {
  let left = 0, right = window.innerWidth;
  for (let el = plot.parentElement; el; el = el.parentElement) {
    if (getComputedStyle(el).overflowX !== 'visible') {
      const r = el.getBoundingClientRect(); left = Math.max(left, r.left); right = Math.min(right, r.right);
    }
  }
  const box = el => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; };
  return {
    visible: {left, right}, plot: box(plot.querySelector('.main-svg')),
    colorbar: box(plot.querySelector('.colorbar')), rowTotals: box(plot.querySelector('.subplot.x4y .trace.bars')),
  };
})"""


def test_a_map_wider_than_its_column_keeps_its_colour_legend_and_row_totals_in_view_at_1000_px(
    server: str, browser: Any
) -> None:
    """At 1000 px with the sidebar open a long pair's map is wider than its column and scrolls sideways; the colour
    legend and the row totals sit at its left edge, on screen without scrolling."""
    page = browser.new_page(viewport={"width": 1000, "height": 1100})
    try:
        page.goto(pair_url(server, LONG_A, LONG_B, top="3"))
        wait_maps(page, 1)
        page.wait_for_timeout(500)
        (found,) = page.evaluate(KEYS_IN_VIEW_JS)[:1]
        visible = found["visible"]
        assert found["plot"]["width"] > visible["right"] - visible["left"] + 50, found  # the map does not fit
        for key in ("colorbar", "rowTotals"):
            box = found[key]
            assert box["width"] > 0, (key, found)
            assert visible["left"] <= box["left"] and box["right"] <= visible["right"], (key, found)
    finally:
        page.close()


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core's axe.min.js from the npm registry (`npm install --prefix tests axe-core`, as .ci/run does)."""
    import os

    candidates = [Path(os.environ["PAIRLENS_AXE_JS"])] if os.environ.get("PAIRLENS_AXE_JS") else []
    for path in [*candidates, *AXE_PATHS]:
        if path.is_file():
            return path
    pytest.skip(
        f"axe-core is not installed: npm install --prefix tests axe-core@{AXE_VERSION} (or set PAIRLENS_AXE_JS)"
    )


AXE_RUN_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 160), summary: n.failureSummary})),
  }));
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation_in_either_theme(
    server: str, tiny_bert: Path, browser: Any, axe_script: Path, scheme: str
) -> None:
    """axe-core on the page with two models, light and dark: no serious or critical violation."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    try:
        page.goto(two_model_url(server, tiny_bert, top="3"))
        wait_maps(page, 3)
        page.locator(".pl-explained-head").first.wait_for(timeout=RENDER_TIMEOUT_MS)
        page.wait_for_timeout(1500)
        background = page.evaluate("() => getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        assert (background == "rgb(14, 17, 23)") == (scheme == "dark"), background
        page.add_script_tag(path=str(axe_script))
        violations = page.evaluate(AXE_RUN_JS)
        assert violations == [], json.dumps(violations, indent=1)
    finally:
        page.close()


def test_hovering_a_token_of_the_text_view_outlines_its_partners(server: str, browser: Any) -> None:
    """'guitar' in text A: its strongest partner in text B gets an outline; before the hover none has one."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    try:
        page.goto(pair_url(server, TEXT_A, TEXT_B))
        view = page.locator(".pl-tv-0")
        view.wait_for(timeout=RENDER_TIMEOUT_MS)
        outlined = (
            "() => [...document.querySelectorAll('.pl-tv-0 .pl-tok[data-b]')]"
            ".filter(t => getComputedStyle(t).outlineStyle === 'solid').map(t => t.textContent)"
        )
        assert page.evaluate(outlined) == []
        view.locator(".pl-tok[data-a]", has_text="guitar").first.hover()
        page.wait_for_function(f"() => ({outlined})().length === 3", timeout=10_000)
        assert "instrument" in page.evaluate(outlined)
    finally:
        page.close()


GREYED_JS = """(selector) => [...document.querySelectorAll(selector)].map(el => {
  let opacity = 1, stale = false;
  for (let a = el; a; a = a.parentElement) {
    opacity *= parseFloat(getComputedStyle(a).opacity || '1');
    stale = stale || a.getAttribute('data-stale') === 'true';
  }
  return {opacity, stale};
})"""


def slow_column_url(server: str, tiny_bert: Path, steps: int) -> str:
    """MiniLM at layer 0 with `steps` fixed steps (a slow column) beside the tiny model (a quick one)."""
    from urllib.parse import urlencode

    query = urlencode(
        [("a", TEXT_A), ("b", TEXT_B), ("model", "all-MiniLM-L6-v2"), ("layer", "0"), ("model", str(tiny_bert)),
         ("layer", "default"), ("steps", str(steps)), ("top", "3")]
    )  # fmt: skip
    return f"{server}/?{query}"


def open_computing(browser: Any, url: str) -> tuple[Any, Any]:
    """A new tab on `url` once its MiniLM column computes ('Compute it' pressed if the page asks): (page, bar)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    try:
        page.goto(url)
        progress = page.locator("[data-testid=stProgress]").filter(has_text="all-MiniLM-L6-v2:")
        compute = page.get_by_role("button", name="Compute it")
        progress.or_(compute).first.wait_for(timeout=RENDER_TIMEOUT_MS)
        if compute.count():  # estimated above the page's threshold: the user agrees to wait
            compute.click()
        progress.first.wait_for(timeout=RENDER_TIMEOUT_MS)
    except BaseException:
        page.close()
        raise
    return page, progress


def test_a_slow_model_never_greys_the_other_column_or_the_tools(server: str, tiny_bert: Path, browser: Any) -> None:
    """MiniLM at layer 0 with 256 fixed steps computes for many seconds; meanwhile the tiny model's map
    beside it is drawn and not greyed, the toolbar works (not greyed either), the slow column shows its
    progress, and its Cancel button stops it."""
    page, progress = open_computing(browser, slow_column_url(server, tiny_bert, 256))
    try:
        wait_maps(page, 1)
        seen: list[str] = []
        for _ in range(4):  # over about 2 s of computing (the watcher redraws the bar on each of its runs)
            try:
                progress.first.wait_for(timeout=30_000)
            except Exception:
                page.screenshot(path=str(ROOT / "test-artifacts" / "slow-model-no-progress.png"), full_page=True)
                raise
            seen.append(progress.first.inner_text())
            maps = page.evaluate(GREYED_JS, ".js-plotly-plot")
            tools = page.evaluate(GREYED_JS, ".st-key-pl-toolbar")
            assert len(maps) == 1 and maps[0] == {"opacity": 1, "stale": False}, maps
            assert tools == [{"opacity": 1, "stale": False}], tools
            page.wait_for_timeout(500)
        assert all(re.search(r"preparing|waiting|% of [\d,]+ tangent passes", text) for text in seen), seen
        # the tools answer while the slow map computes: Words redraws the tiny model's map
        page.get_by_role("radio", name="Words", exact=True).click()
        page.wait_for_function("() => location.search.includes('level=word')", timeout=60_000)
        assert page.evaluate(GREYED_JS, ".js-plotly-plot")[0]["opacity"] == 1
        progress.first.wait_for(timeout=10_000)
        page.locator(".st-key-pl-models").get_by_role("button", name="Cancel").click()
        page.get_by_text("Cancelled. Press Explain to compute it again.").wait_for(timeout=60_000)
        assert progress.count() == 0
        # the rerun that drew "Cancelled" may still hold the previous run's elements, greyed as stale, for a
        # moment: once it settles one map is left, not greyed
        page.wait_for_function(
            f"() => JSON.stringify(({GREYED_JS})('.js-plotly-plot'))"
            " === JSON.stringify([{opacity: 1, stale: false}])",
            timeout=30_000,
        )
    finally:
        page.close()


def test_a_slow_column_keeps_computing_while_its_tab_stalls(server: str, tiny_bert: Path, browser: Any) -> None:
    """A hidden tab's timers are throttled (to once a minute after five minutes in Chrome), so the slow
    column's watcher can stop rerunning for longer than the page's grace for abandoned jobs. Here the tab's
    scripts are paused for 8 s (the debugger, as a frozen tab): the map goes on computing and its progress
    carries on from where it was, instead of starting again from nothing. Closing the tab still cancels it."""
    url = slow_column_url(server, tiny_bert, 1024)
    page, _ = open_computing(browser, url)
    try:
        wait_maps(page, 1)
        percent = "(() => { const m = [...document.querySelectorAll('[data-testid=stProgress]')]"
        percent += ".map(e => e.innerText.match(/(\\d+) % of/)).find(Boolean); return m ? +m[1] : -1; })"
        # 5 % of 20,480 tangent passes took seconds of computing; a job started again after the pause would
        # have had 3 s at most to get there
        page.wait_for_function(f"() => {percent}() >= 5", timeout=180_000)
        before = page.evaluate(f"{percent}()")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Debugger.enable")
        cdp.send("Debugger.pause")
        time.sleep(8)  # > one watcher run (WATCH_SECONDS) + the grace (ABANDON_GRACE)
        cdp.send("Debugger.resume")
        cdp.detach()
        page.wait_for_function(f"() => {percent}() !== {before}", timeout=30_000)  # the watcher's next run
        page.wait_for_timeout(3000)
        after = page.evaluate(f"{percent}()")
        assert after > before, (before, after)  # a job started again would show less than before
    finally:
        page.close()
    # a closed tab still lets its job go: the same request 8 s later starts from the beginning
    time.sleep(8)
    page, _ = open_computing(browser, url)
    try:
        page.wait_for_function(f"() => {percent}() >= 0", timeout=60_000)
        assert page.evaluate(f"{percent}()") < after
    finally:
        page.close()


def test_text_roles_in_advanced_options_give_each_text_the_models_own_prompt(
    server: str, tiny_models: Any, browser: Any
) -> None:
    """A model with E5-style prompts: Advanced options → Text roles "A is a query, B a document" → Explain;
    the score card names the two prompts, the link carries the roles, and the map's rows and columns
    start with the prompt tokens."""
    prompted = str(tiny_models["bert-prompts"])
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    try:
        page.goto(pair_url(server, TEXT_A, TEXT_B, model=prompted, top="3"))
        wait_maps(page, 1)
        facts = page.locator(".pl-facts")
        facts.first.wait_for(timeout=RENDER_TIMEOUT_MS)
        assert "prompts" not in facts.first.inner_text()
        page.get_by_role("button", name="Advanced options").click()
        page.locator(".st-key-roles input").first.click()
        page.get_by_role("option", name="A is a query, B a document", exact=True).click()
        page.keyboard.press("Escape")  # close the popover, as a click elsewhere does
        page.get_by_role("button", name="Explain", exact=True).click()
        page.locator(".pl-facts", has_text="A 'query: ' · B 'passage: '").wait_for(timeout=RENDER_TIMEOUT_MS)
        page.wait_for_function("() => location.search.includes('roles=query%2Cdocument')", timeout=60_000)
        rows = page.evaluate(TICKS_JS)
        assert any("query" in str(r) for r in rows[:4]), rows
    finally:
        page.close()


def type_into_model_box(page: Any, text: str) -> Any:
    """Click the model box and type `text` into its search field, as a user does; the field."""
    box = page.locator(".st-key-models input").first
    box.click()
    box.fill(text)
    return box


def test_share_this_view_shows_the_link_of_the_page_when_opened(server: str, browser: Any) -> None:
    """The share link is drawn when its expander opens (not before: its code block is a large script); it is the
    address of the view, which reopens it."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(pair_url(server, TEXT_A, TEXT_B, top="4"))
        wait_maps(page, 1)
        assert page.locator("[data-testid=stCode]").count() == 0
        page.get_by_text("Share this view", exact=True).click()
        code = page.locator(".st-key-pl-share [data-testid=stCode]")
        code.wait_for(timeout=30_000)
        link = code.inner_text().strip()
        assert "top=4" in link and "model=all-MiniLM-L6-v2" in link and link.startswith(server), link
        page.goto(link)  # the link reopens the view
        wait_maps(page, 1)
        page.wait_for_function("() => new URLSearchParams(location.search).get('top') === '4'", timeout=30_000)
        assert page.locator(".pl-top-table tbody tr").count() == 4  # the top 4 pairs, as shared
    finally:
        page.close()


def test_the_model_box_takes_a_typed_folder_on_a_local_page_and_only_lists_models_on_a_shared_one(
    server: str, tiny_bert: Path, browser: Any, page_home: dict[str, str]
) -> None:
    """A one-person local page: type a model folder into the model box, Enter, Explain: its map appears
    beside MiniLM's. A shared page (PAIRLENS_ALLOW_CUSTOM_MODELS=0): the same typing finds nothing to add,
    and the page says how its operator allows more models."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(pair_url(server, TEXT_A, TEXT_B, top="3"))
        wait_maps(page, 1)
        page.get_by_text("Or type a Hugging Face hub id").wait_for(timeout=30_000)
        type_into_model_box(page, str(tiny_bert))
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Explain", exact=True).click()
        wait_maps(page, 2)
        page.wait_for_function(
            f"() => new URLSearchParams(location.search).getAll('model').includes({json.dumps(str(tiny_bert))})",
            timeout=60_000,
        )
        with serve(env={**page_home, "PAIRLENS_ALLOW_CUSTOM_MODELS": "0"}) as shared:
            page.goto(pair_url(shared, TEXT_A, TEXT_B, top="3"))
            wait_maps(page, 1)
            says_how = "the operator can allow others with PAIRLENS_ALLOW_CUSTOM_MODELS=1"
            page.get_by_text(says_how).wait_for(timeout=30_000)
            box = type_into_model_box(page, str(tiny_bert))
            page.get_by_text("No results").wait_for(timeout=10_000)
            page.keyboard.press("Enter")  # nothing to add: the typed text stays in the search box
            box.fill("")
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Explain", exact=True).click()
            page.wait_for_timeout(3_000)
            chosen = page.locator(".st-key-models").first.inner_text()
            assert "all-MiniLM-L6-v2" in chosen and "bert" not in chosen, chosen
            assert str(tiny_bert) not in page.evaluate("() => decodeURIComponent(location.search)")
    finally:
        page.close()
