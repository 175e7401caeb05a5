"""Plotly figures of attributions: the token-pair heatmap and the two-model difference map.

Pure functions of `Attribution` objects (no streamlit). Every piece of user text that reaches
a plotly label goes through `plotly_escape`, because plotly renders <b>, <br>, <a href> in labels.
Rows and columns are index-based (tick labels carry the text), so repeated tokens stay apart.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..result import Attribution

COLORBAR_TITLE = "contribution to similarity"
DIFFERENCE_TITLE = "difference in contribution"
FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Arial, sans-serif"
TEXT_COLOUR = "#1f2937"
MUTED = "#6b7280"
# Diverging red-blue (ColorBrewer RdBu, reversed): blue lowers the similarity, red raises it.
DIVERGING = [
    [0.0, "#053061"],
    [0.1, "#2166ac"],
    [0.2, "#4393c3"],
    [0.3, "#92c5de"],
    [0.4, "#d1e5f0"],
    [0.5, "#f7f7f7"],
    [0.6, "#fddbc7"],
    [0.7, "#f4a582"],
    [0.8, "#d6604d"],
    [0.9, "#b2182b"],
    [1.0, "#67001f"],
]
# One fixed colour per Universal POS tag, so strips read the same in every figure.
UPOS_COLOURS = {
    "NOUN": "#59a14f",
    "PROPN": "#2f7d5b",
    "VERB": "#b07aa1",
    "AUX": "#d4a6c8",
    "ADJ": "#f28e2b",
    "ADV": "#ffbe7d",
    "PRON": "#ff9d9a",
    "DET": "#bab0ac",
    "ADP": "#86bcb6",
    "CCONJ": "#b6992d",
    "SCONJ": "#d7b5a6",
    "PART": "#e15759",
    "NUM": "#4e79a7",
    "INTJ": "#f1ce63",
    "PUNCT": "#d9d9d9",
    "SYM": "#9d7660",
    "X": "#a0a0a0",
    "SPACE": "#eeeeee",
    "SPECIAL": "#4b5563",
}
UNKNOWN_POS_COLOUR = "#7f7f7f"
TOP_OUTLINE = "#111827"
MAX_LABEL_CHARS = 18
RANK_LABELS_UP_TO = 20  # rank numbers are drawn in outlined cells when k is at most this
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def plotly_escape(text: object) -> str:
    """`text` made inert for plotly's pseudo-HTML labels: <, > and & escaped.

    Quotes stay as typed: plotly decodes &lt; &gt; &amp; but not &quot;, which would show
    literally, and user text never goes into a plotly attribute.
    """
    return html.escape(str(text), quote=False)


def shorten(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """`text` cut to `limit` characters with an ellipsis (hover text keeps the full string)."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def symmetric_limit(*matrices: np.ndarray) -> float:
    """The largest |finite value| over `matrices`: the half-range of a colour scale centred on 0."""
    largest = 0.0
    for matrix in matrices:
        values = np.asarray(matrix, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            largest = max(largest, float(np.abs(finite).max()))
    return largest if largest > 0 else 1e-12


def similarity_label(result: Attribution) -> str:
    """'cosine' or 'dot product', as used in titles and score panels."""
    return "cosine" if result.similarity == "cos" else "dot product"


def figure_title(result: Attribution) -> str:
    """'<b>model</b> · layer L of N · cosine 0.573 · word level' (escaped)."""
    parts = [
        f"<b>{plotly_escape(short_model_name(result.model_name))}</b>",
        f"layer {result.layer} of {result.num_layers}",
        f"{similarity_label(result)} {result.score:.3f}",
    ]
    if result.level == "word":
        parts.append("word level")
    if result.mode == "exact":
        parts.append("exact")
    return " · ".join(parts)


def short_model_name(name: str) -> str:
    """The last path component of a model folder; built-in names unchanged."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def file_stem(result: Attribution) -> str:
    """A file-system-safe name: pairlens_<model>_L<layer>_<level>."""
    model = _SAFE_NAME.sub("-", short_model_name(result.model_name)).strip("-") or "model"
    return f"pairlens_{model}_L{result.layer}_{result.level}"


def tick_labels(tokens: Sequence[str], pos: Sequence[str] | None = None) -> list[str]:
    """Escaped, shortened axis labels; with `pos`, the UPOS follows each label in small grey."""
    labels = []
    for k, token in enumerate(tokens):
        label = plotly_escape(shorten(token))
        if pos is not None and pos[k] != "SPECIAL":
            label += f" <span style='color:{MUTED};font-size:10px'>{plotly_escape(pos[k])}</span>"
        labels.append(label)
    return labels


def cell_size(n_rows: int) -> int:
    """Pixels per matrix row: roomy for short texts, compact for long ones."""
    if n_rows <= 12:
        return 40
    if n_rows <= 24:
        return 30
    if n_rows <= 48:
        return 20
    return 14


def figure_height(n_rows: int, pos_overlay: bool = False, longest_column_label: int = 8) -> int:
    """Figure height in pixels for `n_rows` rows: title, legend and rotated labels included."""
    label_room = 30 + 6 * min(longest_column_label, MAX_LABEL_CHARS + (5 if pos_overlay else 0))
    height = n_rows * cell_size(n_rows) + 90 + label_room + (40 if pos_overlay else 0)
    return int(min(max(height, 340), 1800))


def figure_width(n_cols: int, pos_overlay: bool = False) -> int:
    """A width for server-side image export (the page itself stretches the figure)."""
    width = n_cols * cell_size(n_cols) + 260 + (30 if pos_overlay else 0)
    return int(min(max(width, 640), 2000))


def _format_share(value: float, total: float) -> str:
    if not (math.isfinite(total) and total != 0 and math.isfinite(value)):
        return "–"
    return f"{100 * value / total:+.1f} %"


def _pos_or_dash(pos: Sequence[str] | None, k: int) -> str:
    return plotly_escape(pos[k]) if pos is not None and k < len(pos) else "–"


def _hover_data(result: Attribution) -> np.ndarray:
    """(n_a, n_b, 5) object array: token A, token B, share of the sum, POS A, POS B (escaped)."""
    matrix = np.asarray(result.matrix, dtype=np.float64)
    n_a, n_b = matrix.shape
    data = np.empty((n_a, n_b, 5), dtype=object)
    data[:, :, 0] = np.array([plotly_escape(t) for t in result.a.tokens], dtype=object)[:, None]
    data[:, :, 1] = np.array([plotly_escape(t) for t in result.b.tokens], dtype=object)[None, :]
    total = result.attribution_sum
    shares = [_format_share(v, total) for v in matrix.ravel().tolist()]
    data[:, :, 2] = np.array(shares, dtype=object).reshape(n_a, n_b)
    data[:, :, 3] = np.array([_pos_or_dash(result.a.pos, i) for i in range(n_a)], dtype=object)[:, None]
    data[:, :, 4] = np.array([_pos_or_dash(result.b.pos, j) for j in range(n_b)], dtype=object)[None, :]
    return data


HOVER_TEMPLATE = (
    "<b>%{customdata[0]}</b> – <b>%{customdata[1]}</b><br>"
    "value %{z:+.4f}<br>"
    "share of the sum %{customdata[2]}<br>"
    "POS %{customdata[3]} / %{customdata[4]}"
    "<extra></extra>"
)


def _pos_strip(
    pos: Sequence[str], tokens: Sequence[str], categories: list[str], vertical: bool, xaxis: str, yaxis: str
) -> dict[str, Any]:
    """A one-cell-wide heatmap trace coloured by UPOS category (discrete colour scale)."""
    codes = [categories.index(p) for p in pos]
    m = len(categories)
    scale: list[list[Any]] = []
    for k, name in enumerate(categories):
        colour = UPOS_COLOURS.get(name, UNKNOWN_POS_COLOUR)
        scale += [[k / m, colour], [(k + 1) / m, colour]]
    hover = [f"{plotly_escape(t)} · {plotly_escape(p)}" for t, p in zip(tokens, pos, strict=True)]
    z = [[c] for c in codes] if vertical else [codes]
    text = [[h] for h in hover] if vertical else [hover]
    return dict(
        type="heatmap",
        z=z,
        x=[0] if vertical else list(range(len(codes))),
        y=list(range(len(codes))) if vertical else [0],
        text=text,
        hovertemplate="%{text}<extra></extra>",
        colorscale=scale,
        zmin=-0.5,
        zmax=m - 0.5,
        showscale=False,
        xgap=0,
        ygap=1 if vertical else 0,
        xaxis=xaxis,
        yaxis=yaxis,
        name="POS",
    )


def pos_categories(*label_lists: Sequence[str] | None) -> list[str]:
    """UPOS labels present in any list, in the order of `UPOS_COLOURS` (unknown ones last)."""
    present: set[str] = set()
    for labels in label_lists:
        if labels is not None:
            present.update(labels)
    known = [name for name in UPOS_COLOURS if name in present]
    return known + sorted(present.difference(UPOS_COLOURS))


def build_heatmap(
    result: Attribution,
    *,
    top_k: int = 0,
    pos_overlay: bool = False,
    zmax: float | None = None,
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Heatmap of `result.matrix`: rows = text A tokens, columns = text B tokens.

    Diverging colour scale centred on 0 with range [-zmax, zmax] (default: this matrix's
    largest |value|). top_k outlines the k strongest cells (numbered when k <= 20).
    pos_overlay adds UPOS strips along both axes, a POS legend and POS in the tick labels
    (ignored when the result has no POS tags). `title` is plotly HTML (escape user text).
    """
    matrix = np.asarray(result.matrix, dtype=np.float64)
    n_a, n_b = matrix.shape
    overlay = pos_overlay and result.a.pos is not None and result.b.pos is not None
    limit = float(zmax) if zmax is not None and zmax > 0 else symmetric_limit(matrix)
    labels_a = tick_labels(result.a.tokens, result.a.pos if overlay else None)
    labels_b = tick_labels(result.b.tokens, result.b.pos if overlay else None)
    longest_b = max((len(shorten(t)) for t in result.b.tokens), default=4)
    fig_height = height or figure_height(n_a, overlay, longest_b)
    gaps = 1 if max(n_a, n_b) <= 60 else 0

    traces: list[dict[str, Any]] = [
        dict(
            type="heatmap",
            z=matrix,
            x=list(range(n_b)),
            y=list(range(n_a)),
            customdata=_hover_data(result),
            hovertemplate=HOVER_TEMPLATE,
            colorscale=DIVERGING,
            zmid=0.0,
            zmin=-limit,
            zmax=limit,
            xgap=gaps,
            ygap=gaps,
            name="attribution",
            colorbar=dict(
                title=dict(text=COLORBAR_TITLE, side="right", font=dict(size=12, color=MUTED)),
                thickness=12,
                len=0.85 if not overlay else 0.75,
                y=0.5 if not overlay else 0.55,
                yanchor="middle",
                outlinewidth=0,
                tickfont=dict(size=11),
                tickformat="+.2f",
            ),
        )
    ]

    axis_font = dict(size=12 if max(n_a, n_b) <= 40 else 10, color=TEXT_COLOUR)
    rotate = n_b > 6 or longest_b > 8
    xaxis = dict(
        tickmode="array",
        tickvals=list(range(n_b)),
        ticktext=labels_b,
        tickangle=-50 if rotate else 0,
        tickfont=axis_font,
        title=dict(text="text B", font=dict(size=12, color=MUTED), standoff=8),
        showgrid=False,
        zeroline=False,
        range=[-0.5, n_b - 0.5],
        automargin=True,
        ticks="",
        constrain="domain",
    )
    yaxis = dict(
        tickmode="array",
        tickvals=list(range(n_a)),
        ticktext=labels_a,
        tickfont=axis_font,
        title=dict(text="text A", font=dict(size=12, color=MUTED), standoff=8),
        showgrid=False,
        zeroline=False,
        range=[n_a - 0.5, -0.5],  # first token on top
        automargin=True,
        ticks="",
    )
    layout: dict[str, Any] = {}
    if overlay:
        assert result.a.pos is not None and result.b.pos is not None
        plot_px = max(fig_height - 170, 120)
        strip_y = min(16 / plot_px, 0.12)
        strip_x = 0.028
        gap = 0.006
        categories = pos_categories(result.a.pos, result.b.pos)
        traces.append(_pos_strip(result.a.pos, result.a.tokens, categories, True, "x2", "y"))
        traces.append(_pos_strip(result.b.pos, result.b.tokens, categories, False, "x", "y3"))
        for name in categories:
            traces.append(
                dict(
                    type="scatter",
                    x=[None],
                    y=[None],
                    mode="markers",
                    marker=dict(symbol="square", size=11, color=UPOS_COLOURS.get(name, UNKNOWN_POS_COLOUR)),
                    name=plotly_escape(name),
                    showlegend=True,
                    hoverinfo="skip",
                )
            )
        xaxis.update(domain=[strip_x + gap, 1.0], anchor="y3")
        yaxis.update(domain=[strip_y + gap, 1.0], anchor="x2")
        layout["xaxis2"] = dict(domain=[0.0, strip_x], anchor="y", range=[-0.5, 0.5], visible=False, fixedrange=True)
        layout["yaxis3"] = dict(domain=[0.0, strip_y], anchor="x", range=[-0.5, 0.5], visible=False, fixedrange=True)
        layout["legend"] = dict(
            orientation="h",
            x=1.0,
            xanchor="right",
            y=1.0,
            yanchor="bottom",
            font=dict(size=11),
            itemclick=False,
            itemdoubleclick=False,
            title=dict(text="POS ", font=dict(size=11, color=MUTED)),
        )

    shapes, annotations = _top_marks(result, top_k, n_a, n_b)
    layout.update(
        title=dict(
            text=title if title is not None else figure_title(result),
            x=0.0,
            xanchor="left",
            pad=dict(l=8),
            y=0.995,
            yanchor="top",
            font=dict(size=15, color=TEXT_COLOUR),
        ),
        xaxis=xaxis,
        yaxis=yaxis,
        height=fig_height,
        margin=dict(l=10, r=10, t=62 if overlay else 42, b=10),
        font=dict(family=FONT, color=TEXT_COLOUR),
        paper_bgcolor="white",
        plot_bgcolor="white",
        hoverlabel=dict(bgcolor="white", bordercolor="#9ca3af", font=dict(size=13, family=FONT, color=TEXT_COLOUR)),
        showlegend=overlay,
        shapes=shapes,
        annotations=annotations,
        dragmode=False,
    )
    return fast_figure(traces, layout)


def fast_figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A go.Figure from plain dicts without plotly's per-property validation (several times faster).

    The builders' output is checked against plotly's validators in tests/test_components.py.
    """
    return go.Figure(data=traces, layout=layout, _validate=False)


def _top_marks(result: Attribution, k: int, n_a: int, n_b: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Outline rectangles (and rank numbers) for the k strongest cells."""
    k = max(0, min(int(k), n_a * n_b))
    if k == 0:
        return [], []
    width = 2.5 if max(n_a, n_b) <= 30 else 1.5
    shapes, annotations = [], []
    for rank, pair in enumerate(result.top_pairs(k), start=1):
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="y",
                x0=pair.j - 0.5,
                x1=pair.j + 0.5,
                y0=pair.i - 0.5,
                y1=pair.i + 0.5,
                line=dict(color=TOP_OUTLINE, width=width),
                fillcolor="rgba(0,0,0,0)",
                layer="above",
            )
        )
        if k <= RANK_LABELS_UP_TO and max(n_a, n_b) <= 48:
            annotations.append(
                dict(
                    x=pair.j,
                    y=pair.i,
                    xref="x",
                    yref="y",
                    text=str(rank),
                    showarrow=False,
                    font=dict(size=10, color=TOP_OUTLINE),
                    bgcolor="rgba(255,255,255,0.75)",
                    borderpad=1,
                )
            )
    return shapes, annotations


def chart_config(result: Attribution, scale: int = 4) -> dict[str, Any]:
    """plotly config: camera button saves a PNG at `scale` x, named after model, layer and level."""
    return {
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": "png", "filename": file_stem(result), "scale": max(int(scale), 3)},
        "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
    }


def _word_grid(result: Attribution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spaCy word index of each row, of each column, matrix) of a word-level result, specials dropped."""
    if result.level != "word" or result.a.word_index is None or result.b.word_index is None:
        raise ValueError("build_difference_map needs word-level results: use result.to_words().")
    rows = np.asarray(result.a.word_index, dtype=np.int64)
    cols = np.asarray(result.b.word_index, dtype=np.int64)
    matrix = np.asarray(result.matrix, dtype=np.float64)
    keep_r, keep_c = rows >= 0, cols >= 0
    return rows[keep_r], cols[keep_c], matrix[np.ix_(keep_r, keep_c)]


def align_word_matrices(first: Attribution, second: Attribution) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """Two word-level results on one grid keyed by spaCy word index (NaN where a model has no cell).

    Returns (word rows, word columns, first's matrix, second's matrix). Words align across
    models with different tokenizers because both results group tokens into the same spaCy words.
    """
    if first.a.text != second.a.text or first.b.text != second.b.text:
        raise ValueError("The two results explain different text pairs; a difference map needs the same pair.")
    rows_1, cols_1, m_1 = _word_grid(first)
    rows_2, cols_2, m_2 = _word_grid(second)
    rows = sorted(set(rows_1.tolist()) | set(rows_2.tolist()))
    cols = sorted(set(cols_1.tolist()) | set(cols_2.tolist()))
    row_at = {w: k for k, w in enumerate(rows)}
    col_at = {w: k for k, w in enumerate(cols)}

    def place(r: np.ndarray, c: np.ndarray, m: np.ndarray) -> np.ndarray:
        out = np.full((len(rows), len(cols)), np.nan)
        out[np.ix_([row_at[w] for w in r.tolist()], [col_at[w] for w in c.tolist()])] = m
        return out

    return rows, cols, place(rows_1, cols_1, m_1), place(rows_2, cols_2, m_2)


def build_difference_map(
    first: Attribution, second: Attribution, *, zmax: float | None = None, height: int | None = None
) -> go.Figure:
    """Word-level map of first.matrix − second.matrix (same text pair, two models).

    Cells align by spaCy word index, so models with different tokenizers compare word for
    word; a word that one model truncated away is blank. Colour range symmetric around 0.
    """
    rows, cols, m_1, m_2 = align_word_matrices(first, second)
    diff = m_1 - m_2
    words_a = first.a.words or second.a.words or []
    words_b = first.b.words or second.b.words or []
    names_a = [words_a[w] if w < len(words_a) else f"word {w}" for w in rows]
    names_b = [words_b[w] if w < len(words_b) else f"word {w}" for w in cols]
    name_1 = plotly_escape(short_model_name(first.model_name))
    name_2 = plotly_escape(short_model_name(second.model_name))
    custom = np.empty((*diff.shape, 4), dtype=object)
    for i, word_a in enumerate(names_a):
        for j, word_b in enumerate(names_b):
            custom[i, j] = (plotly_escape(word_a), plotly_escape(word_b), _signed(m_1[i, j]), _signed(m_2[i, j]))
    limit = float(zmax) if zmax is not None and zmax > 0 else symmetric_limit(diff)
    n_a, n_b = diff.shape
    longest_b = max((len(shorten(w)) for w in names_b), default=4)
    template = (
        "<b>%{customdata[0]}</b> – <b>%{customdata[1]}</b><br>"
        f"{name_1} %{{customdata[2]}}<br>{name_2} %{{customdata[3]}}<br>"
        "difference %{z:+.4f}<extra></extra>"
    )
    trace = dict(
        type="heatmap",
        z=diff,
        x=list(range(n_b)),
        y=list(range(n_a)),
        customdata=custom,
        hovertemplate=template,
        colorscale=DIVERGING,
        zmid=0.0,
        zmin=-limit,
        zmax=limit,
        xgap=1 if max(n_a, n_b) <= 60 else 0,
        ygap=1 if max(n_a, n_b) <= 60 else 0,
        colorbar=dict(
            title=dict(text=DIFFERENCE_TITLE, side="right", font=dict(size=12, color=MUTED)),
            thickness=12,
            len=0.85,
            outlinewidth=0,
            tickformat="+.2f",
        ),
    )
    layout = dict(
        title=dict(
            text=f"<b>{name_1}</b> − <b>{name_2}</b> · word level",
            x=0.0,
            xanchor="left",
            pad=dict(l=8),
            font=dict(size=15, color=TEXT_COLOUR),
        ),
        xaxis=dict(
            tickmode="array",
            tickvals=list(range(n_b)),
            ticktext=tick_labels(names_b),
            tickangle=-50 if (n_b > 6 or longest_b > 8) else 0,
            title=dict(text="text B", font=dict(size=12, color=MUTED)),
            showgrid=False,
            zeroline=False,
            range=[-0.5, n_b - 0.5],
            automargin=True,
            ticks="",
        ),
        yaxis=dict(
            tickmode="array",
            tickvals=list(range(n_a)),
            ticktext=tick_labels(names_a),
            ticks="",
            title=dict(text="text A", font=dict(size=12, color=MUTED)),
            showgrid=False,
            zeroline=False,
            range=[n_a - 0.5, -0.5],
            automargin=True,
        ),
        height=height or figure_height(n_a, False, longest_b),
        margin=dict(l=10, r=10, t=42, b=10),
        font=dict(family=FONT, color=TEXT_COLOUR),
        paper_bgcolor="white",
        plot_bgcolor="white",
        hoverlabel=dict(bgcolor="white", bordercolor="#9ca3af", font=dict(size=13, family=FONT)),
        dragmode=False,
    )
    return fast_figure([trace], layout)


def _signed(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else "–"
