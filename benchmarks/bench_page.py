"""Page latency: cold start to first heatmap, a new pair to its heatmap, a top-k slider move.

    python benchmarks/bench_page.py            # real browser (Debian chromium + Playwright)
    python benchmarks/bench_page.py --apptest  # server-side only, through Streamlit's AppTest
    python benchmarks/bench_page.py --first-map  # cold and warm (cached) first map, and the fold at 1440x900

Browser mode starts `streamlit run app.py` on a free port and measures what a user waits
for: from the server's start to the first heatmap drawn (imports and model loading
included), from clicking Explain on a new pair to its heatmap, and from a slider key press
to the redrawn outlines, and from a click on a toggle (POS overlay) to the redrawn map.
Targets (all-MiniLM-L6-v2): 15 s, 1 s, 0.35 s, 0.35 s. The machine is shared, so the load
average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from page_driver import (  # noqa: E402
    CHROMIUM,
    MAP_PAINTED_MARK_JS,
    SHAPES_JS,
    TICKS_JS,
    launch,
    map_painted_ms,
    open_sessions,
    serve,
    wait_heatmap,
)

TARGETS = {
    "cold start to first heatmap": 15.0,
    "new pair to heatmap": 1.0,
    "slider move re-render": 0.35,
    "toggle re-render": 0.35,
    "new session, cached pair, to first heatmap": 3.0,  # a new visitor, the page's own clock
    "  the same, this script's wall clock": 3.0,
    "  a returning visitor's new tab": 3.0,
}
FOLD_PX = 900  # the first map should start above this at 1440 x 900 (issue 24)
TRACES_JS = "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data ? p.data.length : -1; }"
PAIRS = [
    ("Two dogs are running through a snowy field.", "A pair of puppies play in the snow."),
    ("How do I reset my password?", "What should I do if I forgot my login details?"),
    ("The meeting was postponed because of the storm.", "Due to bad weather, the meeting was moved."),
    ("The restaurant was not crowded at all.", "The restaurant was very crowded."),
    ("The recipe calls for two cups of flour.", "The satellite entered orbit around Mars."),
    ("A man is slicing a tomato.", "Someone cuts a vegetable."),
    ("She plays the violin beautifully.", "Her guitar is out of tune."),
    ("The train was delayed by the storm.", "Bad weather held up the railway."),
]


def report(name: str, seconds: list[float]) -> None:
    value = statistics.median(seconds)
    target = TARGETS[name]
    verdict = "ok" if value <= target else "OVER TARGET"
    spread = f" (n={len(seconds)}, min {min(seconds):.3f}, max {max(seconds):.3f})" if len(seconds) > 1 else ""
    print(f"{name:30s} {value:8.3f} s   target <= {target:g} s   {verdict}{spread}")


def bench_concurrency(browser: Any, url: str, sessions: int) -> None:
    """`sessions` pairs one after another, then the same pairs at once in as many browser sessions.

    The concurrent round appends a space to each text: the same tokens and work, but a new
    cache key, so nothing is served from the first round's results.
    """
    pairs = [PAIRS[k % len(PAIRS)] for k in range(sessions)]
    started = time.perf_counter()
    for pair in pairs:
        (page,) = open_sessions(browser, url, [pair])
        wait_heatmap(page, pair[0].split()[1])
        page.context.close()
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    pages = open_sessions(browser, url, [(a + " ", b + " ") for a, b in pairs])
    for page, pair in zip(pages, pairs, strict=True):
        wait_heatmap(page, pair[0].split()[1])
    at_once = time.perf_counter() - started
    for page in pages:
        page.context.close()
    print(
        f"{sessions} sessions one after another {one_by_one:8.2f} s\n"
        f"{sessions} sessions at once          {at_once:8.2f} s   ratio {at_once / one_by_one:.2f} "
        "(target: at most one after another plus overhead)"
    )


def bench_browser(repeats: int, sessions: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        page.context.add_init_script(MAP_PAINTED_MARK_JS)
        started = time.perf_counter()  # the server's start counts: serve() launches it
        try:
            with serve() as url:
                page.goto(url)
                map_painted_ms(page)  # seen within a frame of its painting
                report("cold start to first heatmap", [time.perf_counter() - started])
                measure_interaction(page, repeats)
                bench_concurrency(browser, url, sessions)
        finally:
            browser.close()


def measure_interaction(page: Any, repeats: int) -> None:
    """New pairs typed and explained, then slider key presses, on an open page."""
    new_pair = []
    for text_a, text_b in PAIRS[: max(repeats, 1)]:
        page.get_by_label("Text A — rows").fill(text_a)
        page.get_by_label("Text B — columns").fill(text_b)
        first_word = text_a.split()[1]
        clicked = time.perf_counter()
        page.get_by_role("button", name="Explain").click()
        page.wait_for_function(f"() => ({TICKS_JS})().includes({first_word!r})", timeout=120_000)
        new_pair.append(time.perf_counter() - clicked)
    report("new pair to heatmap", new_pair)

    slider = page.get_by_role("slider").first
    moves = []
    for _ in range(max(repeats, 1) * 2):
        before = page.evaluate(SHAPES_JS)
        slider.focus()
        pressed = time.perf_counter()
        slider.press("ArrowRight")
        page.wait_for_function(f"() => ({SHAPES_JS})() > {before}", timeout=60_000)
        moves.append(time.perf_counter() - pressed)
    report("slider move re-render", moves)

    toggle = page.locator(".st-key-pl-toolbar").get_by_text("POS overlay", exact=True)
    flips = []
    for _ in range(max(repeats, 1) * 2):
        before = page.evaluate(TRACES_JS)
        clicked = time.perf_counter()
        toggle.click()
        page.wait_for_function(f"() => ({TRACES_JS})() !== {before}", timeout=60_000)
        flips.append(time.perf_counter() - clicked)
    report("toggle re-render", flips)


def bench_first_map(repeats: int) -> None:
    """Cold: the server's start to the first heatmap. Warm: new sessions on a server that has computed the
    default pair. A new visitor is a new browser context at 1440 x 900 (empty HTTP cache); a returning visitor
    opens a new tab in a context that loaded the page before (Streamlit's hashed bundles in the browser's cache,
    as their `immutable` headers allow). Each map is timed by the page's own clock, from navigation start to the
    map's first painted frame (MAP_PAINTED_MARK_JS), and by this script's wall clock from `goto` until it sees
    that mark (Playwright's round trips added). Also where the new visitor's map starts (above the fold when
    < FOLD_PX)."""
    from playwright.sync_api import sync_playwright

    def new_context() -> Any:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_init_script(MAP_PAINTED_MARK_JS)
        return context

    with sync_playwright() as playwright:
        browser = launch(playwright)
        started = time.perf_counter()
        try:
            with serve() as url:
                context = new_context()
                context.new_page().goto(url)
                map_painted_ms(context.pages[0])
                report("cold start to first heatmap", [time.perf_counter() - started])
                context.close()
                new_visitor, wall_clock, returning, tops = [], [], [], []
                for _ in range(max(repeats, 1)):
                    context = new_context()
                    page = context.new_page()
                    opened = time.perf_counter()
                    page.goto(url)
                    new_visitor.append(map_painted_ms(page) / 1000)
                    wall_clock.append(time.perf_counter() - opened)
                    tops.append(page.evaluate(MAP_TOP_JS))
                    page.close()
                    page = context.new_page()
                    page.goto(url)
                    returning.append(map_painted_ms(page) / 1000)
                    context.close()
                report("new session, cached pair, to first heatmap", new_visitor)
                report("  the same, this script's wall clock", wall_clock)
                report("  a returning visitor's new tab", returning)
                top = statistics.median(tops)
                verdict = "above the fold" if top < FOLD_PX else "BELOW THE FOLD"
                print(f"{'first map top edge at 1440x900':30s} {top:8.0f} px  fold {FOLD_PX} px   {verdict}")
        finally:
            browser.close()


MAP_TOP_JS = "() => document.querySelector('.js-plotly-plot').getBoundingClientRect().top"


def bench_apptest(repeats: int) -> None:
    """Server-side script time only (no browser drawing), in a fresh process."""
    started = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    report("cold start to first heatmap", [time.perf_counter() - started])
    new_pair = []
    for text_a, text_b in PAIRS[: max(repeats, 1)]:
        at.text_area(key="text_a").input(text_a)
        at.text_area(key="text_b").input(text_b)
        clicked = time.perf_counter()
        next(b for b in at.button if b.label == "Explain").click().run()
        new_pair.append(time.perf_counter() - clicked)
    report("new pair to heatmap", new_pair)
    moves = []
    for k in range(max(repeats, 1) * 2):
        moved = time.perf_counter()
        at.slider(key="top").set_value(6 + k).run()
        moves.append(time.perf_counter() - moved)
    report("slider move re-render", moves)
    flips = []
    for k in range(max(repeats, 1) * 2):
        flipped = time.perf_counter()
        at.toggle(key="pos").set_value(k % 2 == 0).run()
        flips.append(time.perf_counter() - flipped)
    report("toggle re-render", flips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apptest", action="store_true", help="measure server-side script time only")
    parser.add_argument("--repeats", type=int, default=5, help="new pairs (and twice as many slider moves)")
    parser.add_argument("--sessions", type=int, default=8, help="browser sessions computing at once")
    parser.add_argument("--first-map", action="store_true", help="cold and warm (cached) first map, fold position")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"PairLens page benchmark ({os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    if args.first_map and Path(CHROMIUM).exists():
        bench_first_map(args.repeats)
    elif args.apptest or not Path(CHROMIUM).exists():
        if not args.apptest:
            print(f"{CHROMIUM} is missing (apt-get install -y chromium): measuring server-side only")
        bench_apptest(args.repeats)
    else:
        bench_browser(args.repeats, args.sessions)


if __name__ == "__main__":
    main()
