"""Downloads: CSV, JSON, standalone HTML, and PNG/SVG when a server-side renderer exists."""

from __future__ import annotations

import functools
import json
from typing import Any

import plotly.graph_objects as go

from ..result import Attribution
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


def figure_html(fig: go.Figure, config: dict[str, Any]) -> str:
    """A standalone interactive HTML page of the figure (plotly.js inlined, works offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config=config)


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


def figure_image(fig: go.Figure, fmt: str, width: int, height: int, scale: int = IMAGE_SCALE) -> bytes:
    """PNG or SVG bytes rendered by kaleido (seconds: call it lazily, on download)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', not {fmt!r}")
    return fig.to_image(format=fmt, width=width, height=height, scale=scale if fmt == "png" else 1)
