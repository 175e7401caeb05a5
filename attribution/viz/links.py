"""The "strongest links" view: text A down the left, text B down the right, a line per strong pair.

For long texts, where a map has thousands of cells, this reads like an alignment: only the
k strongest pairs are drawn, line width by |value|, red where the pair raises the similarity
and blue where it lowers it. Pure: an Attribution in, a plotly figure out.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from ..result import Attribution
from .heatmap import fast_figure, figure_title, plotly_escape
from .layout import EDGE, PAGE, Style, base_layout, palette, shorten, text_width

ROW_PX = 19.0  # vertical room per token
MAX_WIDTH_PX = 9.0  # line width of the strongest pair


def build_links(result: Attribution, k: int, *, style: Style = PAGE, title: str | None = None) -> go.Figure:
    """Lines between the k strongest pairs (by |value|) of `result`, over both texts read top to bottom."""
    colours = palette(style)
    n_a, n_b = result.shape
    pairs = result.top_pairs(max(0, int(k)))
    strongest = max((abs(p.value) for p in pairs if math.isfinite(p.value)), default=1.0) or 1.0
    font = style.font(12)
    row = style.font(ROW_PX)
    left = text_width(max((len(shorten(t)) for t in result.a.tokens), default=4), font) + 16
    right = text_width(max((len(shorten(t)) for t in result.b.tokens), default=4), font) + 16
    middle = max(style.font(320), 260.0)
    top = EDGE + style.font(15) * 1.5 + style.font(12) * 1.45 + style.font(12) * 1.6 + 12
    subtitle = f"the {len(pairs)} strongest pairs · line width ∝ |value| · red raises, blue lowers the similarity"
    width = max(EDGE * 2 + left + middle + right, text_width(len(subtitle), style.font(12)) * 0.92 + 2 * EDGE)
    height = top + max(n_a, n_b, 1) * row + EDGE * 2
    extra = width - (EDGE * 2 + left + middle + right)
    x0, x1 = (EDGE + left + extra / 2) / width, (EDGE + left + extra / 2 + middle) / width

    involved_a = {p.i for p in pairs}
    involved_b = {p.j for p in pairs}
    traces: list[dict[str, Any]] = []
    for rank, pair in sorted(enumerate(pairs, start=1), key=lambda rp: abs(rp[1].value)):
        share = f"{100 * pair.share:.1f} %" if math.isfinite(pair.share) else "–"
        hover = (
            f"#{rank} <b>{plotly_escape(pair.token_a)}</b> – <b>{plotly_escape(pair.token_b)}</b><br>"
            f"value {pair.value:+.4f} · {share} of the sum"
        )
        strength = abs(pair.value) / strongest if math.isfinite(pair.value) else 0.0
        colour = colours.positive if pair.value >= 0 else colours.negative
        traces.append(
            dict(
                type="scatter",
                x=[x0, (x0 + x1) / 2, x1],
                y=[pair.i, (pair.i + pair.j) / 2, pair.j],
                mode="lines",
                line=dict(color=colour, width=0.8 + (MAX_WIDTH_PX - 0.8) * strength * style.font_scale),
                opacity=0.35 + 0.6 * strength,
                hovertemplate=f"{hover}<extra></extra>",
                xaxis="x",
                yaxis="y",
                showlegend=False,
            )
        )

    def words(tokens: list[str], involved: set[int], x: float, anchor: str) -> dict[str, Any]:
        texts = [
            f"<b>{plotly_escape(shorten(t))}</b>" if k in involved else plotly_escape(shorten(t))
            for k, t in enumerate(tokens)
        ]
        return dict(
            type="scatter",
            x=[x] * len(tokens),
            y=list(range(len(tokens))),
            mode="text",
            text=texts,
            textposition=anchor,
            textfont=dict(
                size=font, color=[colours.text if k in involved else colours.muted for k in range(len(tokens))]
            ),
            hovertext=[plotly_escape(t) for t in tokens],
            hovertemplate="%{hovertext}<extra></extra>",
            xaxis="x",
            yaxis="y",
            showlegend=False,
        )

    traces.append(words(result.a.tokens, involved_a, x0 - 0.006, "middle left"))
    traces.append(words(result.b.tokens, involved_b, x1 + 0.006, "middle right"))
    span = max(n_a, n_b, 1)
    layout = base_layout(style, width, height, title if title is not None else figure_title(result), subtitle)
    layout.update(
        xaxis=dict(range=[0, 1], visible=False, fixedrange=True, domain=[0, 1]),
        yaxis=dict(
            range=[span - 0.5, -0.5],
            visible=False,
            fixedrange=True,
            domain=[EDGE / height, 1.0 - top / height],
        ),
        annotations=[
            dict(
                text="text A",
                x=x0,
                y=1.0 - (top - 4) / height,
                xref="paper",
                yref="paper",
                xanchor="right",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=style.font(12), color=colours.muted),
            ),
            dict(
                text="text B",
                x=x1,
                y=1.0 - (top - 4) / height,
                xref="paper",
                yref="paper",
                xanchor="left",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=style.font(12), color=colours.muted),
            ),
        ],
        showlegend=False,
        dragmode=False,
        hovermode="closest",
    )
    return fast_figure(traces, layout)
