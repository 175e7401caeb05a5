"""Layer sweep: small multiples of one model's map at every layer, side by side in rows.

Each panel is a label-free miniature of the map at one layer with its sum and integration
error; each uses its own colour range (contributions grow by orders of magnitude from the
embeddings to the last layer), or one shared range on request. Pure: results in, figure out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..result import Attribution
from .heatmap import fast_figure, plotly_escape, short_model_name, similarity_label, symmetric_limit
from .layout import EDGE, PAGE, Style, base_layout, palette

PANEL_PX = 160.0  # longer side of one miniature
MAX_WIDTH_PX = 1080.0  # rows of panels wrap at this width


def sweep_columns(n_panels: int, panel_w: float, max_width: float = MAX_WIDTH_PX) -> int:
    """Panels per row: as many as fit in max_width."""
    return max(1, min(n_panels, int((max_width - 2 * EDGE) // (panel_w + 18))))


def build_sweep(
    results: Sequence[Attribution],
    *,
    shared: bool = False,
    clip: float | None = None,
    chosen: int | None = None,
    style: Style = PAGE,
) -> go.Figure:
    """One miniature per result (one per layer), in layer order; `chosen` (a layer) is outlined."""
    if not results:
        raise ValueError("build_sweep needs at least one result.")
    colours = palette(style)
    ordered = sorted(results, key=lambda r: r.layer)
    n_a, n_b = ordered[0].shape
    cell = max(1.5, min(16.0, style.font(PANEL_PX) / max(n_a, n_b, 1)))
    panel_w, panel_h = n_b * cell, n_a * cell
    label_h = style.font(11) * 4.2 + 6
    slot_w = max(panel_w, style.font(104))  # room for the labels above narrow panels
    columns = sweep_columns(len(ordered), slot_w)
    rows = math.ceil(len(ordered) / columns)
    gap_x, gap_y = 18.0, 14.0
    top = EDGE + style.font(15) * 1.5 + style.font(12) * 1.45 + 10
    width = 3 * EDGE + columns * slot_w + (columns - 1) * gap_x
    width = max(width, 560.0)
    height = top + rows * (label_h + panel_h) + (rows - 1) * gap_y + EDGE
    shared_limit = symmetric_limit(*(r.matrix for r in ordered), clip=clip) if shared else None
    traces: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    annotations: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    for k, result in enumerate(ordered):
        r, c = divmod(k, columns)
        x0 = EDGE + c * (slot_w + gap_x)
        y0 = top + r * (label_h + panel_h + gap_y) + label_h
        suffix = "" if k == 0 else str(k + 1)
        limit = shared_limit if shared_limit is not None else symmetric_limit(result.matrix, clip=clip)
        traces.append(
            dict(
                type="heatmap",
                z=np.asarray(result.matrix, dtype=np.float64),
                colorscale=[[s, col] for s, col in colours.diverging],
                zmid=0.0,
                zmin=-limit,
                zmax=limit,
                showscale=False,
                xaxis=f"x{suffix}",
                yaxis=f"y{suffix}",
                hovertemplate=f"layer {result.layer}<br>row %{{y}}, column %{{x}}<br>value %{{z:+.4f}}<extra></extra>",
                name=f"layer {result.layer}",
            )
        )
        layout[f"xaxis{suffix}"] = dict(
            domain=[x0 / width, (x0 + panel_w) / width], range=[-0.5, n_b - 0.5], visible=False, fixedrange=True,
            anchor=f"y{suffix}",
        )  # fmt: skip
        layout[f"yaxis{suffix}"] = dict(
            domain=[1 - (y0 + panel_h) / height, 1 - y0 / height], range=[n_a - 0.5, -0.5], visible=False,
            fixedrange=True, anchor=f"x{suffix}",
        )  # fmt: skip
        error = f"{100 * result.relative_error:.2g} %" if math.isfinite(result.relative_error) else "n/a"
        if math.isfinite(result.relative_error) and 100 * result.relative_error < 1e-3:
            error = "< 0.001 %"
        heading = f"<b>layer {result.layer}</b>" + (" (embeddings)" if result.layer == 0 else "")
        annotations.append(
            dict(
                text=f"{heading}<br>cells {result.attribution_sum:+.3f}<br>error {error}",
                x=x0 / width, y=1 - (y0 - 3) / height, xref="paper", yref="paper", xanchor="left", yanchor="bottom",
                align="left", showarrow=False, font=dict(size=style.font(11), color=colours.text),
            )
        )  # fmt: skip
        if chosen is not None and result.layer == chosen:
            shapes.append(
                dict(
                    type="rect", xref="paper", yref="paper", x0=(x0 - 3) / width, x1=(x0 + panel_w + 3) / width,
                    y0=1 - (y0 + panel_h + 3) / height, y1=1 - (y0 - label_h) / height,
                    line=dict(color=colours.outline, width=2), fillcolor="rgba(0,0,0,0)",
                )
            )  # fmt: skip
    first = ordered[0]
    scale = "one colour range for all layers" if shared else "each layer on its own colour range"
    title = (
        f"<b>{plotly_escape(short_model_name(first.model_name))}</b> · every layer · "
        f"{similarity_label(first)} {first.own_score:.3f}"
    )
    subtitle = f"attributions at the input of each layer · {scale}"
    layout.update(base_layout(style, width, height, title, subtitle, hover=False))
    layout.update(annotations=annotations, shapes=shapes, showlegend=False, dragmode=False)
    return fast_figure(traces, layout)
