"""Figures of a faithfulness check (attribution.faithfulness). Pure: sweep / curves in, figure out.

- build_sweep_bars: "what the model loses without each word", sorted, beside the map's own ranking of the
  same units (attribution bars in the same rows); units where the two rankings disagree are marked.
- build_curves: deletion and insertion curves (score vs fraction removed / inserted) of each method and of
  random order (mean of the draws, a band of +/- one standard deviation).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..faithfulness.curves import RANDOM, Curves, Kind
from ..faithfulness.methods import SHORT_LABELS
from ..faithfulness.sweep import Sweep
from .heatmap import plotly_escape
from .layout import FONT, PAGE, Style, palette

METHOD_COLOURS = {"integrated-jacobians": "#d6604d", "hessian-x-input": "#4393c3"}
RANDOM_COLOUR = "#9ca3af"
DISAGREE_COLOUR = "#f59e0b"
ROW_PX = 20


def _unit_label(side: str, label: str) -> str:
    return f"{side.upper()} · {plotly_escape(label[:24])}"


def build_sweep_bars(sweep: Sweep, *, style: Style = PAGE) -> go.Figure:
    """Two bar panels sharing rows: the score's loss without each unit (sorted, largest first) and the map's
    attribution of it with its rank; disagreeing units (Sweep.disagreement_rule) in amber with a ≠ mark."""
    colours = palette(style)
    items = sorted(sweep.items, key=lambda item: -item.loss)
    labels = [
        f"{'≠ ' if item.disagrees else ''}{_unit_label(item.side, item.label)} ({k + 1})"
        for k, item in enumerate(items)
    ]
    marker = [DISAGREE_COLOUR if item.disagrees else colours.muted for item in items]
    method_colour = METHOD_COLOURS.get(sweep.method, colours.text)
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=(f"score lost without the {sweep.level}", "the map's attribution (rank)"),
    )
    fig.add_trace(
        go.Bar(
            x=[item.loss for item in items],
            y=labels,
            orientation="h",
            marker=dict(color=marker),
            name="loss",
            hovertemplate="%{y}<br>score loss %{x:+.4f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=[item.attribution for item in items],
            y=labels,
            orientation="h",
            marker=dict(color=[DISAGREE_COLOUR if item.disagrees else method_colour for item in items]),
            text=[f"#{item.attribution_rank}" for item in items],
            textposition="outside",
            cliponaxis=False,
            name="attribution",
            hovertemplate="%{y}<br>attribution %{x:+.4f}, rank %{text}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    rho = "n/a" if not math.isfinite(sweep.spearman) else f"{sweep.spearman:+.2f}"
    edit = f"masked with {sweep.pad_token}" if sweep.op == "mask" else "dropped"
    n_disagree = sum(item.disagrees for item in items)
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=style.font(11)))
    fig.update_xaxes(
        zeroline=True, zerolinecolor=colours.muted, gridcolor=colours.rule, tickfont=dict(size=style.font(10))
    )
    fig.update_annotations(font=dict(size=style.font(12), color=colours.muted))
    fig.update_layout(
        title=dict(
            text=f"<b>{plotly_escape(SHORT_LABELS.get(sweep.method, sweep.method))}</b> · Spearman ρ {rho}",
            subtitle=dict(
                text=f"what the model loses without each {sweep.level}, beside the map's ranking<br>"
                f"each {sweep.level} {plotly_escape(edit)} in turn · score {sweep.score:+.3f} · "
                f"{n_disagree} of {len(items)} disagree (≠)",
                font=dict(size=style.font(11), color=colours.muted),
            ),
            font=dict(size=style.font(14), color=colours.text),
            x=0.01,
            xanchor="left",
        ),
        height=int(140 + ROW_PX * max(len(items), 3) * style.font_scale),
        margin=dict(l=10, r=40, t=122, b=30),
        showlegend=False,
        bargap=0.25,
        font=dict(family=FONT, color=colours.text),
        paper_bgcolor=colours.paper,
        plot_bgcolor=colours.paper,
        dragmode=False,
    )
    return fig


def build_curves(curves: Curves, *, style: Style = PAGE) -> go.Figure:
    """Deletion (left) and insertion (right) curves: each method's order and random order (band: ± 1 sd)."""
    colours = palette(style)
    removed = "tokens" if curves.level == "token" else "words"
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=(
            f"deletion: score as {removed} are removed",
            f"insertion: score as {removed} are put back",
        ),
    )
    kinds: tuple[tuple[int, Kind], ...] = ((1, "deletion"), (2, "insertion"))
    for col, kind in kinds:
        random = curves.curve(RANDOM, kind)
        if random.spread is not None:
            upper = random.scores + random.spread
            lower = random.scores - random.spread
            fig.add_trace(
                go.Scatter(
                    x=list(random.fractions) + list(random.fractions[::-1]),
                    y=list(upper) + list(lower[::-1]),
                    fill="toself",
                    fillcolor="rgba(156,163,175,0.25)",
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Scatter(
                x=random.fractions,
                y=random.scores,
                mode="lines",
                line=dict(color=RANDOM_COLOUR, dash="dash", width=2),
                name=f"random order (mean of {curves.draws})",
                legendgroup=RANDOM,
                showlegend=col == 1,
                hovertemplate=f"random<br>%{{x:.0%}}: %{{y:+.4f}}<br>area {random.area:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        for method in curves.methods:
            curve = curves.curve(method, kind)
            gain = curves.between(method, kind)
            fig.add_trace(
                go.Scatter(
                    x=curve.fractions,
                    y=curve.scores,
                    mode="lines+markers",
                    marker=dict(size=5),
                    line=dict(color=METHOD_COLOURS.get(method, colours.text), width=2.5),
                    name=f"{SHORT_LABELS.get(method, method)} order",
                    legendgroup=method,
                    showlegend=col == 1,
                    customdata=[", ".join(step) for step in [[], *curve.steps]],
                    hovertemplate=f"{plotly_escape(SHORT_LABELS.get(method, method))}<br>%{{x:.0%}}: %{{y:+.4f}}"
                    f"<br>%{{customdata}}<br>area {curve.area:.4f}, gain over random {gain:+.4f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(tickformat=".0%", range=[0, 1], gridcolor=colours.rule, tickfont=dict(size=style.font(10)))
    fig.update_yaxes(gridcolor=colours.rule, tickfont=dict(size=style.font(10)))
    fig.update_yaxes(title=dict(text="score", font=dict(size=style.font(11))), row=1, col=1)
    fig.update_annotations(font=dict(size=style.font(12), color=colours.muted))
    gains = " · ".join(
        f"{SHORT_LABELS.get(m, m)}: deletion gain {curves.between(m, 'deletion'):+.3f}" for m in curves.methods
    )
    order = "by row and column totals" if curves.order == "unit" else "by cells (both words of a pair at once)"
    edit = "masked" if curves.op == "mask" else "dropped"
    fig.update_layout(
        title=dict(
            text=f"<b>Deletion and insertion curves</b> · {gains}",
            subtitle=dict(
                text=f"{removed} {edit} in the map's order ({order}); gain = area gained over random order",
                font=dict(size=style.font(11), color=colours.muted),
            ),
            font=dict(size=style.font(14), color=colours.text),
            x=0.01,
            xanchor="left",
        ),
        height=int(380 * style.font_scale),
        margin=dict(l=10, r=10, t=90, b=30),
        legend=dict(orientation="h", y=-0.15, font=dict(size=style.font(11))),
        font=dict(family=FONT, color=colours.text),
        paper_bgcolor=colours.paper,
        plot_bgcolor=colours.paper,
        dragmode=False,
    )
    return fig
