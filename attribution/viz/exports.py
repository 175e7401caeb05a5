"""Downloads: CSV, JSON, standalone HTML, and PNG/SVG when a server-side renderer exists.

Figures are exported at the size their builder set (square cells, room for every label), so
a file shows the layout of the page; the "slide" preset rebuilds a figure on a 16:9 canvas.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from ..result import Attribution
from .heatmap import chart_config
from .layout import PAGE, SLIDE, Style
from .tables import matrix_frame

IMAGE_SCALE = 3
NO_RENDERER_NOTE = (
    "PNG/SVG downloads need kaleido and a Chrome or Chromium on the server "
    "(e.g. `apt-get install chromium`); use the camera button on the chart instead."
)


def matrix_csv(result: Attribution) -> str:
    """The shown matrix as CSV with 'index:token' row and column labels."""
    return matrix_frame(result).to_csv(float_format="%.8g")


def result_json(result: Attribution) -> str:
    """The shown result's to_dict() as indented JSON."""
    return json.dumps(result.to_dict(), indent=1, ensure_ascii=False)


def figure_html(fig: go.Figure, config: dict[str, Any], title: str = "PairLens") -> str:
    """A standalone interactive HTML page of the figure (plotly.js inlined, works offline) titled `title`."""
    page = fig.to_html(include_plotlyjs=True, full_html=True, config=config)
    head = f"<head><title>{html.escape(title)}</title>"
    return page.replace("<head>", head, 1) if "<head>" in page else page


_TAGS = re.compile(r"<[^>]+>")


def plain_title(fig: go.Figure) -> str:
    """The figure's title as plain text (tags dropped, entities decoded), for an HTML <title>."""
    text = str(fig.layout.title.text or "PairLens")
    return html.unescape(_TAGS.sub("", text)).strip() or "PairLens"


@functools.cache
def renderer_status() -> tuple[bool, str]:
    """(True, '') when kaleido can render images here, else (False, what to install)."""
    try:
        import kaleido  # noqa: F401
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return False, NO_RENDERER_NOTE
    try:
        found = Chromium.find_browser(skip_local=False)
    except Exception:
        found = None
    return (True, "") if found else (False, NO_RENDERER_NOTE)


def figure_image(
    fig: go.Figure, fmt: str, width: int | None = None, height: int | None = None, scale: int = IMAGE_SCALE
) -> bytes:
    """PNG, SVG or PDF bytes rendered by kaleido at the figure's own size unless given (seconds: call it lazily)."""
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"fmt must be 'png', 'svg' or 'pdf', not {fmt!r}")
    width = width or int(fig.layout.width or 800)
    height = height or int(fig.layout.height or 600)
    return fig.to_image(format=fmt, width=width, height=height, scale=scale if fmt == "png" else 1)


@dataclass(frozen=True)
class Download:
    """One file of a Download menu, made only when asked for (`make`)."""

    label: str
    filename: str
    mime: str
    make: Callable[[], str | bytes]
    image: bool = False  # PNG/SVG: needs kaleido and a browser on the server


def figure_downloads(
    build: Callable[[Style], go.Figure],
    stem: str,
    *,
    slide: bool = True,
    slide_build: Callable[[], go.Figure] | None = None,
) -> list[Download]:
    """HTML, PNG and SVG of a figure built light (`build(PAGE)`), and with `slide` a 16:9 PNG, SVG and PDF.

    The slide is `slide_build()` when given (attribution.viz.slides: texts, scores, top pairs), else
    `build(SLIDE)`. Files are named `stem`.html, `stem`.png, `stem`.svg, `stem`_slide.png|svg|pdf.
    """

    def html_page() -> str:
        fig = build(PAGE)
        return figure_html(fig, chart_config(fig, stem), plain_title(fig))

    def slide_figure() -> go.Figure:
        return slide_build() if slide_build is not None else build(SLIDE)

    items = [
        Download("Interactive figure (HTML)", f"{stem}.html", "text/html", html_page),
        Download(
            f"Image (PNG, {IMAGE_SCALE}×)", f"{stem}.png", "image/png", lambda: figure_image(build(PAGE), "png"), True
        ),
        Download("Image (SVG)", f"{stem}.svg", "image/svg+xml", lambda: figure_image(build(PAGE), "svg"), True),
    ]
    if slide:
        items += [
            Download(
                "Slide 16:9 (PNG)",
                f"{stem}_slide.png",
                "image/png",
                lambda: figure_image(slide_figure(), "png", scale=1),
                True,
            ),
            Download(
                "Slide 16:9 (SVG)",
                f"{stem}_slide.svg",
                "image/svg+xml",
                lambda: figure_image(slide_figure(), "svg"),
                True,
            ),
            Download(
                "Slide 16:9 (PDF)",
                f"{stem}_slide.pdf",
                "application/pdf",
                lambda: figure_image(slide_figure(), "pdf"),
                True,
            ),
        ]
    return items


def result_downloads(result: Attribution, stem: str) -> list[Download]:
    """The shown matrix as CSV and the shown result as JSON."""
    return [
        Download("Matrix (CSV)", f"{stem}.csv", "text/csv", lambda: matrix_csv(result)),
        Download("Result (JSON)", f"{stem}.json", "application/json", lambda: result_json(result)),
    ]


def frame_download(frame: pd.DataFrame, label: str, filename: str) -> Download:
    """A table as CSV."""
    return Download(label, filename, "text/csv", lambda: frame.to_csv(index=False, float_format="%.8g"))
