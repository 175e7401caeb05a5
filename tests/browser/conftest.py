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
def page_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a module's page server: a PAIRLENS_HOME of its own, so no module's server sees
    results or measured rates another module's server left behind (each module runs as it does alone)."""
    return {"PAIRLENS_HOME": str(tmp_path_factory.mktemp("page-home"))}


@pytest.fixture(scope="module")
def server(browser_available: None, page_home: dict[str, str]) -> Iterator[str]:
    """The page (`streamlit run app.py`) served on a free local port for this module; its URL."""
    with serve(env=page_home) as url:
        yield url
