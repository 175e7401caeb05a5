"""Plotly figures of a corpus summary (summary.json of `python -m attribution analyze`).

Pure functions of plain data: `summary` is the dict of summary.json, `table` holds per-pair
columns (lists of floats, NaN where missing) read from pairs.csv. Drawn by the corpus report
(attribution.workflows.corpus) and the Corpus page alike.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"
ACCENT = "#b2182b"
MUTED = "#6b7280"
RULE_COLOURS = {"gauss-legendre": "#b2182b", "midpoint": "#2166ac", "riemann-right": "#6b7280"}
WIDTH, HEIGHT = 900, 480


def _layout(fig: go.Figure, title: str, height: int = HEIGHT, width: int = WIDTH) -> go.Figure:
    fig.update_layout(
        title={"text": html.escape(title, quote=False), "x": 0.01, "xanchor": "left"},
        font={"family": FONT, "size": 13},
        template="plotly_white",
        width=width,
        height=height,
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def _values(values: Sequence[Any] | None) -> list[float]:
    """None -> NaN, so plotly draws a gap."""
    return [math.nan if v is None else float(v) for v in (values or [])]


def empty_figure(title: str, message: str) -> go.Figure:
    """A blank figure that says why there is nothing to plot."""
    fig = go.Figure()
    fig.add_annotation(
        text=html.escape(message, quote=False), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=260)


def top_k_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Share of attribution_sum carried by the k strongest cells: mean line, median, IQR band."""
    title = "Share of the attribution sum carried by the top-k token pairs"
    top = summary.get("top_k_share") or {}
    if not top.get("k") or not summary.get("pairs"):
        return empty_figure(title, "No finished pairs.")
    k = list(top["k"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=k, y=_values(top["q3"]), mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip")
    )
    fig.add_trace(
        go.Scatter(
            x=k,
            y=_values(top["q1"]),
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(178,24,43,0.15)",
            name="quartiles (25-75 %)",
        )
    )
    fig.add_trace(
        go.Scatter(x=k, y=_values(top["median"]), mode="lines", line={"color": ACCENT, "dash": "dot"}, name="median")
    )
    fig.add_trace(go.Scatter(x=k, y=_values(top["mean"]), mode="lines+markers", line={"color": ACCENT}, name="mean"))
    fig.add_hline(y=1.0, line={"color": MUTED, "width": 1, "dash": "dash"})
    fig.update_xaxes(title="k (strongest token pairs by |value|)", dtick=1)
    fig.update_yaxes(title="share of the attribution sum", tickformat=".0%")
    return _layout(fig, title)


def coverage_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Cells and tokens needed for 50/80/90 % of the sum: medians with quartile error bars."""
    title = "What it takes to reach a share of the attribution sum"
    cov = summary.get("coverage") or {}
    if not cov.get("levels") or not summary.get("pairs"):
        return empty_figure(title, "No finished pairs.")
    labels = [f"{round(100 * q)} %" for q in cov["levels"]]
    fig = go.Figure()
    series = (
        ("cells_fraction", "token pairs (share of all cells)", ACCENT),
        ("tokens_share", "tokens touched (share of all tokens)", "#2166ac"),
        ("content_tokens_share", "non-special tokens touched", "#92c5de"),
        ("random_tokens_share", "tokens touched by as many random cells", "#bdbdbd"),
    )
    for key, name, colour in series:
        part = cov.get(key) or {}
        median, q1, q3 = _values(part.get("median")), _values(part.get("q1")), _values(part.get("q3"))
        if not median:
            continue
        fig.add_trace(
            go.Bar(
                x=labels,
                y=median,
                name=name,
                marker_color=colour,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [hi - m for hi, m in zip(q3, median, strict=True)],
                    "arrayminus": [m - lo for lo, m in zip(q1, median, strict=True)],
                },
            )
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="share of the attribution sum to reach")
    fig.update_yaxes(title="median over pairs (bars: quartiles)", tickformat=".0%", range=[0, 1.05])
    return _layout(fig, title)


def pos_share_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Per UPOS: share of the attribution (pooled over the corpus) beside its share of tokens."""
    title = "Parts of speech: share of attribution against share of tokens"
    pos = summary.get("pos") or {}
    if not pos.get("labels"):
        return empty_figure(title, "No POS tags (install the spaCy model en_core_web_sm).")
    labels = list(pos["labels"])
    fig = go.Figure()
    fig.add_trace(
        go.Bar(x=labels, y=_values(pos["attribution_share"]), name="share of attribution", marker_color=ACCENT)
    )
    fig.add_trace(go.Bar(x=labels, y=_values(pos["token_share"]), name="share of tokens", marker_color="#9ca3af"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="Universal POS (SPECIAL: [CLS], [SEP], ...)")
    fig.update_yaxes(title="share", tickformat=".0%")
    return _layout(fig, title)


def pos_matrix_figure(summary: Mapping[str, Any]) -> go.Figure:
    """POS of text A x POS of text B: share of the pooled attribution sum."""
    title = "POS x POS: share of the attribution sum (rows: text A, columns: text B)"
    matrix = (summary.get("pos") or {}).get("matrix") or {}
    if not matrix.get("labels_a"):
        return empty_figure(title, "No POS tags.")
    z = [_values(row) for row in matrix["share"]]
    finite = [abs(v) for row in z for v in row if math.isfinite(v)]
    zmax = max(finite) if finite and max(finite) > 0 else 1.0
    text = [[f"{v:.1%}" if math.isfinite(v) else "" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(matrix["labels_b"]),
            y=list(matrix["labels_a"]),
            colorscale="RdBu",
            reversescale=True,
            zmid=0,
            zmin=-zmax,
            zmax=zmax,
            text=text,
            texttemplate="%{text}",
            colorbar={"title": "share", "tickformat": ".0%"},
            hovertemplate="A %{y} x B %{x}: %{z:.2%}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", title="text A")
    fig.update_xaxes(title="text B", side="top")
    size = 140 + 38 * max(len(matrix["labels_a"]), len(matrix["labels_b"]))
    fig = _layout(fig, title, height=max(size, 420) + 50, width=max(size + 140, 620))
    fig.update_layout(margin={"t": 130}, title={"y": 0.98, "yanchor": "top"})
    return fig


def convergence_figure(summary: Mapping[str, Any]) -> go.Figure:
    """Median |relative integration error| against N, one panel per layer, one line per rule."""
    title = "Integration error against steps (median over the convergence pairs)"
    conv = summary.get("convergence") or {}
    layers = list(conv.get("layers") or [])
    if not layers or not conv.get("curves"):
        return empty_figure(title, "This run did not check how many steps each layer needs.")
    fig = make_subplots(
        rows=1, cols=len(layers), shared_yaxes=True, subplot_titles=[f"layer {layer}" for layer in layers]
    )
    shown: set[str] = set()
    for curve in conv["curves"]:
        col = layers.index(curve["layer"]) + 1
        median = [v if v is not None and v > 0 else math.nan for v in _values(curve["median"])]
        fig.add_trace(
            go.Scatter(
                x=curve["steps"],
                y=median,
                mode="lines+markers",
                name=curve["rule"],
                legendgroup=curve["rule"],
                showlegend=curve["rule"] not in shown,
                line={"color": RULE_COLOURS.get(curve["rule"], MUTED)},
                hovertemplate=f"{curve['rule']}, layer {curve['layer']}: N=%{{x}}, median %{{y:.2e}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        shown.add(curve["rule"])
    fig.add_hline(y=1e-3, line={"color": MUTED, "width": 1, "dash": "dash"})
    fig.update_xaxes(type="log", title="steps N", dtick=math.log10(2), tickformat="d")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title="median |relative error|", row=1, col=1)
    return _layout(fig, title, width=max(WIDTH, 330 * len(layers)))


def gold_figure(summary: Mapping[str, Any], table: Mapping[str, Sequence[float]]) -> go.Figure:
    """Gold score against the model's score and against the attribution sum, with correlations."""
    title = "Model score and attribution sum against gold"
    corr = summary.get("correlation") or {}
    gold = _values(table.get("gold"))
    if not corr.get("gold") or not gold or all(math.isnan(g) for g in gold):
        return empty_figure(title, "The data has no gold scores.")

    def caption(key: str, name: str) -> str:
        values = corr.get(key) or {}
        sp, pe = values.get("spearman"), values.get("pearson")
        if sp is None or pe is None:
            return name
        return f"{name} (Spearman {sp:.2f}, Pearson {pe:.2f})"

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=[caption("score_vs_gold", "score"), caption("sum_vs_gold", "attribution sum")]
    )
    rows = [f"line {int(r)}" if math.isfinite(r) else "" for r in _values(table.get("row"))]
    for col, key in ((1, "score"), (2, "attribution_sum")):
        fig.add_trace(
            go.Scatter(
                x=gold,
                y=_values(table.get(key)),
                mode="markers",
                marker={"color": ACCENT if col == 1 else "#2166ac", "size": 6, "opacity": 0.6},
                text=rows,
                hovertemplate="%{text}: gold %{x}, %{y:.3f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title="gold")
    fig.update_yaxes(title="model score", row=1, col=1)
    fig.update_yaxes(title="attribution sum", row=1, col=2)
    return _layout(fig, title)


def corpus_figures(summary: Mapping[str, Any], table: Mapping[str, Sequence[float]]) -> dict[str, go.Figure]:
    """Every corpus figure by file-friendly name, in reading order."""
    return {
        "top_k_share": top_k_figure(summary),
        "coverage": coverage_figure(summary),
        "pos_share": pos_share_figure(summary),
        "pos_matrix": pos_matrix_figure(summary),
        "convergence": convergence_figure(summary),
        "gold": gold_figure(summary, table),
    }


def report_html(figures: Mapping[str, go.Figure], title: str) -> str:
    """One standalone page with every figure (plotly.js inlined once: opens offline)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>body{{font-family:{FONT};margin:24px;color:#1f2937}}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for index, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(index == 0), config={"displaylogo": False}))
    parts.append("</body></html>")
    return "\n".join(parts)
