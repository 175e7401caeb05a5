"""Downloads in a real browser: click every button of a Download menu, save each file, open it by its kind.

Shared by the browser tests (tests/browser/).
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DOWNLOAD_TIMEOUT_MS = 120_000  # one image export renders in kaleido's own headless browser
PAIR_WORDS = ("guitar", "instrument")  # in every export of the page's example pair


def check_file(path: Path, filename: str, words: Sequence[str] = PAIR_WORDS) -> str:
    """Open a downloaded file by its kind and check what it holds (an SVG carries `words` as text); returns a
    short description."""
    data = path.read_bytes()
    assert data, filename
    slide = "_slide" in filename
    if filename.endswith(".png"):
        from PIL import Image

        image = Image.open(io.BytesIO(data))
        image.load()
        width, height = image.size
        assert width >= 300 and height >= 200, (filename, image.size)
        if slide:
            assert abs(width / height - 16 / 9) < 0.01, (filename, image.size)
        return f"png {width}x{height}"
    if filename.endswith(".svg"):
        root = ET.fromstring(data)
        width, height = float(root.attrib["width"]), float(root.attrib["height"])
        if slide:
            assert abs(width / height - 16 / 9) < 0.01, (filename, width, height)
        text = " ".join(t for t in root.itertext())
        assert all(w in text for w in words), (filename, words, text[:200])  # the texts, as text
        return f"svg {width:.0f}x{height:.0f}"
    if filename.endswith(".pdf"):
        assert data.startswith(b"%PDF"), filename
        return f"pdf {len(data)} bytes"
    if filename.endswith(".html"):
        page = data.decode()
        assert "<title>" in page and "Plotly.newPlot" in page, filename
        return f"html {len(data)} bytes"
    if filename.endswith(".csv"):
        import pandas as pd

        frame = pd.read_csv(io.BytesIO(data))
        assert frame.shape[0] >= 2 and frame.shape[1] >= 2, (filename, frame.shape)
        return f"csv {frame.shape}"
    if filename.endswith(".json"):
        record = json.loads(data)
        assert isinstance(record, dict) and record, filename
        return f"json {len(record)} keys"
    raise AssertionError(f"unexpected download {filename}")


def download_everything(page: Any, menu: Any, tmp: Path, words: Sequence[str] = PAIR_WORDS) -> dict[str, str]:
    """Open the popover `menu`, click every download button in it, save and open each file (check_file);
    {filename: what it holds}."""
    menu.click()
    body = page.locator("[data-testid=stPopoverBody]").last
    body.wait_for(timeout=30_000)
    buttons = body.locator("[data-testid=stDownloadButton] button")
    buttons.first.wait_for(timeout=30_000)  # the popover opens before its buttons are drawn
    labels = [t.strip() for t in buttons.all_inner_texts()]
    assert labels, "an empty Download menu"
    found: dict[str, str] = {}
    for label in labels:
        if not body.is_visible():
            menu.click()
            body.wait_for(timeout=30_000)
        button = body.locator("[data-testid=stDownloadButton] button").filter(has_text=label).first
        with page.expect_download(timeout=DOWNLOAD_TIMEOUT_MS) as info:
            button.click()
        download = info.value
        assert download.failure() is None, (label, download.failure())
        target = tmp / download.suggested_filename
        download.save_as(target)
        found[download.suggested_filename] = check_file(target, download.suggested_filename, words)
    page.keyboard.press("Escape")
    return found
