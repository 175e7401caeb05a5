"""Notebook display of an Attribution: the page's heatmap as a plotly figure (Jupyter, VS Code).

`Attribution.show()` and `Attribution._repr_html_()` call these lazily, so importing the
result record never imports plotly.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from ..result import Attribution
from .heatmap import build_heatmap

NOTEBOOK_TOP = 5  # strongest pairs outlined in the notebook view


def figure(result: Attribution, **options: Any) -> go.Figure:
    """The heatmap of `result` (options as for build_heatmap; top_k defaults to 5)."""
    options.setdefault("top_k", NOTEBOOK_TOP)
    return build_heatmap(result, **options)


def show(result: Attribution, **options: Any) -> go.Figure:
    """Display the heatmap with plotly's notebook renderer and return the figure."""
    fig = figure(result, **options)
    fig.show()
    return fig


def repr_html(result: Attribution) -> str:
    """An HTML fragment with the interactive heatmap (plotly.js from its CDN, loaded once per page)."""
    return figure(result).to_html(full_html=False, include_plotlyjs="cdn", config={"displaylogo": False})
