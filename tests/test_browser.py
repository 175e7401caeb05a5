"""The page in a real browser: Debian chromium driven by Playwright against `streamlit run app.py`.

Run with `pytest -m browser tests/test_browser.py`; skipped when /usr/bin/chromium or
Playwright is missing. A screenshot lands in test-artifacts/page.png.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT = 60.0
RENDER_TIMEOUT_MS = 180_000

pytestmark = pytest.mark.browser


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
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The page served on a free local port for this module."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(url, process, START_TIMEOUT)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_heatmap_hover_slider_and_screenshot(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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


def test_user_text_shows_literally_in_tick_labels(server: str) -> None:
    """Escaped tokens render as the characters typed: no markup, no visible entities."""
    from urllib.parse import urlencode

    from playwright.sync_api import sync_playwright

    query = urlencode({"a": "Tom & Jerry < Spike", "b": "cats and <b>mice</b>", "top": "0"})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.goto(f"{server}/?{query}")
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
