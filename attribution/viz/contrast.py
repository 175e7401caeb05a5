"""The "why B over A?" figure of a ranking contrast (attribution.ranking.Contrast).

One bar pair per query token: what it gives the higher-ranked candidate and what it gives the lower
one (row totals of the two maps), ordered as the query reads; the difference is in the hover. The
slide style fills a 16:9 canvas with large fonts.
"""

from __future__ import annotations

import plotly.graph_objects as go

from ..ranking import Contrast
from .heatmap import plotly_escape
from .layout import PAGE, Style, palette


def _cut(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def build_contrast_figure(contrast: Contrast, *, style: Style = PAGE, model_name: str = "") -> go.Figure:
    """Grouped bars per shown query token (special and prompt tokens left out)."""
    rows = [i for i, hidden in enumerate(contrast.query_hidden) if not hidden] or list(
        range(len(contrast.query_tokens))
    )
    tokens = [f"{plotly_escape(contrast.query_tokens[i])}<span style='font-size:0'>{i}</span>" for i in rows]
    diff = contrast.query_difference
    high = [float(contrast.query_rows_higher[i]) for i in rows]
    low = [float(contrast.query_rows_lower[i]) for i in rows]
    hover = [f"{plotly_escape(contrast.query_tokens[i])}: difference {diff[i]:+.4f}" for i in rows]
    colours = palette(style)
    fig = go.Figure(
        [
            go.Bar(x=tokens, y=high, name=f"#{contrast.higher.rank} {plotly_escape(_cut(contrast.higher.text, 40))}",
                   marker_color=colours.positive, hovertext=hover, hoverinfo="text+y"),
            go.Bar(x=tokens, y=low, name=f"#{contrast.lower.rank} {plotly_escape(_cut(contrast.lower.text, 40))}",
                   marker_color=colours.negative, hovertext=hover, hoverinfo="text+y"),
        ]
    )  # fmt: skip
    title = (
        f"Why #{contrast.higher.rank} outranks #{contrast.lower.rank}"
        + (f" ({plotly_escape(model_name)})" if model_name else "")
        + f"<br><sup>score gap {contrast.score_gap:+.4f}; the maps account for {contrast.attribution_gap:+.4f}"
        " (bars: each query token's total in each map)</sup>"
    )
    width, height = style.canvas or (max(640, 70 * len(rows) + 200), 480)
    fig.update_layout(
        title={"text": title, "font": {"size": style.font(18)}},
        barmode="group",
        width=width,
        height=height,
        font={"size": style.font(13), "color": colours.text},
        paper_bgcolor=colours.paper,
        plot_bgcolor=colours.paper,
        legend={"orientation": "h", "y": -0.2, "font": {"size": style.font(12)}},
        yaxis={"title": "contribution to the score", "zerolinecolor": colours.rule, "gridcolor": colours.rule},
        margin={"t": 90, "b": 120, "l": 80, "r": 30},
    )
    return fig
