"""Shared by the browser tests: skip cleanly without chromium / Playwright, one page server per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from page_driver import CHROMIUM, serve


@pytest.fixture(scope="module")
def browser_available() -> None:
    """Skip the module's tests when Debian's chromium or Playwright for Python is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


@pytest.fixture(scope="module")
def server(browser_available: None) -> Iterator[str]:
    """The page (`streamlit run app.py`) served on a free local port for this module; its URL."""
    with serve() as url:
        yield url
