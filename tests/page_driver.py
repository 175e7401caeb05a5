"""Driving the real page: `streamlit run app.py` on a free port and Debian chromium via Playwright.

Shared by the browser tests and `benchmarks/bench_page.py`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots and downloads the browser tests leave for a person to look at
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RENDER_TIMEOUT_MS = 300_000

# The first heatmap on a page: its row labels, outlined cells and computed matrix.
PLOT_JS = "document.querySelector('.js-plotly-plot')"
TICKS_JS = f"() => {{ const p = {PLOT_JS}; return p && p.layout ? p.layout.yaxis.ticktext : []; }}"
COLUMN_TICKS_JS = f"() => {{ const p = {PLOT_JS}; return p && p.layout ? p.layout.xaxis.ticktext : []; }}"
SHAPES_JS = f"() => {{ const p = {PLOT_JS}; return p && p.layout ? (p.layout.shapes || []).length : -1; }}"
MATRIX_JS = f"() => {{ const p = {PLOT_JS}; const z = p.calcdata[0][0].z; return Array.from(z, r => Array.from(r)); }}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def serve(timeout: float = 60.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """The page on a free loopback port; yields its URL once healthy, stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(url, process, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def pair_url(url: str, text_a: str, text_b: str, **params: str) -> str:
    return f"{url}/?{urlencode({'a': text_a, 'b': text_b, **params})}"


def open_sessions(browser: Any, url: str, pairs: Sequence[tuple[str, str]]) -> list[Any]:
    """One browser context (= one Streamlit session) per pair, all opened before any is awaited."""
    pages = []
    for text_a, text_b in pairs:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(pair_url(url, text_a, text_b), wait_until="commit")
        pages.append(page)
    return pages


# Added to a browser context before its pages load (context.add_init_script): records, in the page's own clock
# (ms since navigation start), the first animation frame after the first heatmap's drag layer exists, i.e.
# when the map is first painted. Timing a map by when Playwright's wait_for_selector returns added 0.15-0.23 s
# to this mark here (goto's round trip before navigation starts, the selector's polling, the reply).
MAP_PAINTED_MARK_JS = """
(() => {
  const observer = new MutationObserver(() => {
    if (!document.querySelector('.js-plotly-plot .nsewdrag')) return;
    observer.disconnect();
    requestAnimationFrame(() => { window.__plMapPaintedMs = performance.now(); });
  });
  observer.observe(document, {subtree: true, childList: true});
})();
"""


def map_painted_ms(page: Any) -> float:
    """Ms from navigation start to the first heatmap's first painted frame (the context needs MAP_PAINTED_MARK_JS)."""
    handle = page.wait_for_function("() => window.__plMapPaintedMs", polling="raf", timeout=RENDER_TIMEOUT_MS)
    return float(handle.json_value())


def wait_heatmap(page: Any, first_token: str | None = None) -> None:
    """Until the first heatmap is drawn (and, if given, has `first_token` among its rows)."""
    page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=RENDER_TIMEOUT_MS)
    if first_token is not None:
        page.wait_for_function(f"() => ({TICKS_JS})().includes({first_token!r})", timeout=RENDER_TIMEOUT_MS)


def heatmap_matrix(page: Any) -> list[list[float]]:
    return list(page.evaluate(MATRIX_JS))


def row_labels(page: Any) -> list[str]:
    return list(page.evaluate(TICKS_JS))
