"""Plotly figures of attribution matrices: the token-pair map, the two-model difference map.

Pure functions of `Attribution` objects (no streamlit). Every piece of user text that reaches
a plotly label goes through `plotly_escape`, because plotly renders <b>, <br>, <a href> in labels.
Rows and columns are index-based (tick labels carry the text), so repeated tokens stay apart.

Every map is laid out in pixels by `attribution.viz.layout`: square cells, room for rotated
labels, optional POS strips and row/column totals, the colour bar beside them. The figure has
an explicit width and height, so the page, the camera button and every export show one layout.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..result import Attribution
from .layout import (
    EDGE,
    GAP,
    PAGE,
    Grid,
    Palette,
    Style,
    base_layout,
    colorbar_band,
    colorbar_width,
    fit_cell,
    grid_geometry,
    header_height,
    palette,
    shorten,
    text_width,
)

COLORBAR_TITLE = "contribution to similarity"
DIFFERENCE_TITLE = "difference in contribution"
SHARE_DIFFERENCE_TITLE = "difference in share of the sum"
TEXT_COLOUR = "#1f2937"
MUTED = "#6b7280"
DIVERGING = [[stop, colour] for stop, colour in palette(PAGE).diverging]
# One fixed colour per Universal POS tag, so strips read the same in every figure. Chosen so every
# two tags differ by CIELAB dE >= 15 for normal vision and under deuteranopia and protanopia
# (Machado et al. 2009 simulation; checked in tests/viz/test_colours.py).
UPOS_COLOURS = {
    "NOUN": "#0067c4",
    "PROPN": "#56b1ef",
    "VERB": "#e5a100",
    "AUX": "#f6d585",
    "ADJ": "#00a863",
    "ADV": "#93e6b0",
    "PRON": "#c979b1",
    "DET": "#c6c5c7",
    "ADP": "#8d9589",
    "CCONJ": "#f2e942",
    "SCONJ": "#a49d41",
    "PART": "#d25600",
    "NUM": "#322087",
    "INTJ": "#a44398",
    "PUNCT": "#e3d8fd",
    "SYM": "#8b2541",
    "X": "#6c6771",
    "SPACE": "#f9fff7",
    "SPECIAL": "#39395a",
}
UNKNOWN_POS_COLOUR = "#7f7f7f"
TOP_OUTLINE = "#111827"
RANK_LABELS_UP_TO = 20  # rank numbers are drawn in outlined cells when k is at most this
CLIP_CHOICES = (None, 99.0, 95.0, 90.0)  # percentile of |value| where the colours saturate
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def plotly_escape(text: object) -> str:
    """`text` made inert for plotly's pseudo-HTML labels: <, > and & escaped.

    Quotes stay as typed: plotly decodes &lt; &gt; &amp; but not &quot;, which would show
    literally, and user text never goes into a plotly attribute.
    """
    return html.escape(str(text), quote=False)


def symmetric_limit(*matrices: np.ndarray, clip: float | None = None) -> float:
    """Half-range of a colour scale centred on 0: the largest |finite value| over `matrices`.

    clip = a percentile (e.g. 95): the limit is that percentile of |value| instead, so a few
    strong cells no longer wash out the rest (cells beyond it show the end colours).
    """
    values = [np.abs(np.asarray(m, dtype=np.float64)).ravel() for m in matrices]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size == 0:
        return 1e-12
    limit = float(np.percentile(finite, clip)) if clip is not None else float(finite.max())
    if not limit > 0:
        limit = float(finite.max())
    return limit if limit > 0 else 1e-12


def similarity_label(result: Attribution) -> str:
    """'cosine' or 'dot product', as used in titles and score panels."""
    return "cosine" if result.similarity == "cos" else "dot product"


def short_model_name(name: str) -> str:
    """The last path component of a model folder; built-in names unchanged."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def figure_title(result: Attribution) -> str:
    """'<b>model</b> · layer L of N · cosine 0.573 · word level' (escaped): always the model's own score."""
    parts = [
        f"<b>{plotly_escape(short_model_name(result.model_name))}</b>",
        f"layer {result.layer} of {result.num_layers}",
        f"{similarity_label(result)} {result.own_score:.3f}",
    ]
    if result.level == "word":
        parts.append("word level")
    return " · ".join(parts)


def shared_scale_title(n_models: int) -> str:
    """The colour bar's title when n_models maps share one range."""
    return f"contribution · shared by {n_models} models"


def figure_subtitle(result: Attribution, clip: float | None = None, limit: float | None = None) -> str:
    """What the map explains when that is not the model's own score, and colour clipping."""
    notes = []
    if result.mode == "exact":
        explained = f"exact mode: the cells explain the shifted embeddings' {similarity_label(result)}"
        notes.append(
            f"{explained} {result.score:.3f}" + (" (not an exact model)" if result.explains_other_score else "")
        )
    if clip is not None and limit is not None:
        notes.append(f"colours saturate at ±{limit:.3g} ({clip:g}th percentile of |value|)")
    return " · ".join(notes)


def pair_hash(text_a: str, text_b: str) -> str:
    """8 hex digits naming a text pair in file names (same pair, same name; order matters)."""
    digest = hashlib.sha256(f"{text_a}\x00{text_b}".encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:8]


def _safe(name: str) -> str:
    return _SAFE_NAME.sub("-", short_model_name(name)).strip("-") or "model"


def file_stem(result: Attribution, kind: str = "") -> str:
    """A file-system-safe name: pairlens_<model>_L<layer>_<level>_<pair hash>[_<kind>]."""
    stem = (
        f"pairlens_{_safe(result.model_name)}_L{result.layer}_{result.level}_{pair_hash(result.a.text, result.b.text)}"
    )
    return f"{stem}_{kind}" if kind else stem


def difference_stem(first: Attribution, second: Attribution) -> str:
    """pairlens_diff_<model 1>-minus-<model 2>_<level>_<pair hash>."""
    names = f"{_safe(first.model_name)}-minus-{_safe(second.model_name)}"
    return f"pairlens_diff_{names}_{first.level}_{pair_hash(first.a.text, first.b.text)}"


def tick_labels(tokens: Sequence[str], pos: Sequence[str] | None = None, muted: str = MUTED) -> list[str]:
    """Escaped, shortened axis labels; with `pos`, the UPOS follows each label in small grey."""
    labels = []
    for k, token in enumerate(tokens):
        label = plotly_escape(shorten(token))
        if pos is not None and pos[k] != "SPECIAL":
            label += f" <span style='color:{muted};font-size:0.8em'>{plotly_escape(pos[k])}</span>"
        labels.append(label)
    return labels


def label_chars(tokens: Sequence[str], pos: Sequence[str] | None = None) -> float:
    """Length of the longest label in characters (a POS suffix counts 0.8 per character)."""
    longest = 1.0
    for k, token in enumerate(tokens):
        chars = float(len(shorten(token)))
        if pos is not None and k < len(pos) and pos[k] != "SPECIAL":
            chars += 0.8 * (len(pos[k]) + 1)
        longest = max(longest, chars)
    return longest


def figure_width(n_cols: int, pos_overlay: bool = False, style: Style = PAGE) -> int:
    """Width in px of a map with `n_cols` columns and short labels (the builders size exactly)."""
    grid = grid_geometry(n_cols, n_cols, 8, 8, style, strips=pos_overlay, totals=True)
    return int(EDGE * 2 + grid.width + colorbar_width(style))


def figure_height(n_rows: int, pos_overlay: bool = False, longest_column_label: int = 8) -> int:
    """Height in px of a map with `n_rows` rows (the builders size exactly)."""
    grid = grid_geometry(n_rows, n_rows, 8, longest_column_label, PAGE, strips=pos_overlay, totals=True)
    return int(header_height(PAGE) + grid.height + EDGE)


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


def pos_categories(*label_lists: Sequence[str] | None) -> list[str]:
    """UPOS labels present in any list, in the order of `UPOS_COLOURS` (unknown ones last)."""
    present: set[str] = set()
    for labels in label_lists:
        if labels is not None:
            present.update(labels)
    known = [name for name in UPOS_COLOURS if name in present]
    return known + sorted(present.difference(UPOS_COLOURS))


# ----------------------------------------------------------------------------- one map panel


@dataclass
class MapPanel:
    """Everything one matrix panel shows, before it is placed on a canvas.

    matrix (n_rows, n_cols) in score units; labels escaped; hover = customdata per cell with
    `template`; limit = the colour range's half-width; marks = (row, col, rank) outlined cells.
    totals_note names the row/column sums in their hover ("row sum", "change").
    """

    matrix: np.ndarray
    row_labels: list[str]
    col_labels: list[str]
    row_chars: float
    col_chars: float
    customdata: np.ndarray | None
    template: str
    limit: float
    colorbar_title: str
    row_names: list[str] = field(default_factory=list)  # escaped full names for the totals' hover
    col_names: list[str] = field(default_factory=list)
    pos_a: list[str] | None = None
    pos_b: list[str] | None = None
    marks: list[tuple[int, int, int]] = field(default_factory=list)
    totals: bool = True
    total_for_share: float = math.nan  # the sum that row/column totals are shares of
    axis_titles: tuple[str, str] = ("text A", "text B")
    heading: str = ""  # plotly HTML above the panel (combined figures)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.row_labels), len(self.col_labels))

    def geometry(self, style: Style, cell: float | None = None) -> Grid:
        strips = self.pos_a is not None and self.pos_b is not None
        return grid_geometry(
            *self.shape, self.row_chars, self.col_chars, style, strips=strips, totals=self.totals, cell=cell
        )


def _domain_x(x0: float, x1: float, width: float) -> list[float]:
    return [max(x0 / width, 0.0), min(x1 / width, 1.0)]


def _domain_y(top: float, bottom: float, height: float) -> list[float]:
    return [max(1.0 - bottom / height, 0.0), min(1.0 - top / height, 1.0)]


def _pos_strip(
    pos: Sequence[str], names: Sequence[str], categories: list[str], vertical: bool, xaxis: str, yaxis: str
) -> dict[str, Any]:
    """A one-cell-wide heatmap trace coloured by UPOS category (discrete colour scale)."""
    codes = [categories.index(p) for p in pos]
    m = len(categories)
    scale: list[list[Any]] = []
    for k, name in enumerate(categories):
        colour = UPOS_COLOURS.get(name, UNKNOWN_POS_COLOUR)
        scale += [[k / m, colour], [(k + 1) / m, colour]]
    hover = [f"{t} · {plotly_escape(p)}" for t, p in zip(names, pos, strict=True)]
    return dict(
        type="heatmap",
        z=[[c] for c in codes] if vertical else [codes],
        x=[0] if vertical else list(range(len(codes))),
        y=list(range(len(codes))) if vertical else [0],
        text=[[h] for h in hover] if vertical else [hover],
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


def _totals_hover(names: Sequence[str], sums: np.ndarray, total: float, what: str) -> list[str]:
    return [
        f"<b>{n}</b><br>{what} {s:+.4f}" + (f" ({_format_share(s, total)} of the sum)" if math.isfinite(total) else "")
        for n, s in zip(names, sums.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class _Placed:
    """Where one panel sits on the canvas (px) and the ids of its plotly axes.

    x, y: the map's axes; x2/y3: the POS strips' axes; x4/y5: the row/column totals' axes.
    """

    grid: Grid
    origin: tuple[float, float]
    canvas: tuple[float, float]
    suffix: str
    ids: dict[str, str]
    ax: dict[str, str]
    strips: bool

    @property
    def grid_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the grid in px from the canvas's top-left corner."""
        gx0, gy0 = self.origin[0] + self.grid.grid_x, self.origin[1] + self.grid.grid_y
        return gx0, gy0, gx0 + self.grid.grid_w, gy0 + self.grid.grid_h


def _placement(
    panel: MapPanel, grid: Grid, origin: tuple[float, float], canvas: tuple[float, float], index: int
) -> _Placed:
    suffix = "" if index == 0 else str(index * 10)
    ids = {k: f"{k}{suffix}" if suffix else k for k in ("x", "y")}
    names = ((2, "x2"), (3, "y3"), (4, "x4"), (5, "y5"), (6, "x6"))
    ax = {name: f"{name[0]}{index * 10 + n}" for n, name in names}
    if index == 0:
        ax = {"x2": "x2", "y3": "y3", "x4": "x4", "y5": "y5", "x6": "x6"}
    strips = grid.strip > 0 and panel.pos_a is not None and panel.pos_b is not None
    return _Placed(grid, origin, canvas, suffix, ids, ax, strips)


def _map_trace(
    panel: MapPanel, at: _Placed, style: Style, colours: Palette, colorbar_x: float | None
) -> dict[str, Any]:
    """The heatmap of the panel's matrix, with the colour bar when `colorbar_x` is given (the first panel)."""
    n_rows, n_cols = panel.shape
    gaps = 1 if at.grid.cell >= 12 else 0
    trace: dict[str, Any] = dict(
        type="heatmap", z=panel.matrix, x=list(range(n_cols)), y=list(range(n_rows)),
        customdata=panel.customdata, hovertemplate=panel.template,
        colorscale=[[s, c] for s, c in colours.diverging], zmid=0.0, zmin=-panel.limit, zmax=panel.limit,
        xgap=gaps, ygap=gaps, name="attribution", xaxis=at.ids["x"], yaxis=at.ids["y"],
        showscale=colorbar_x is not None, hoverongaps=False,
    )  # fmt: skip
    if colorbar_x is not None and style.keys_left:
        trace["colorbar"] = _colorbar_above(panel, at, style, colours, colorbar_x)
    elif colorbar_x is not None:
        width, height = at.canvas
        _, gy0, _, _ = at.grid_box
        trace["colorbar"] = dict(
            title=dict(text=panel.colorbar_title, side="right", font=dict(size=style.font(12), color=colours.muted)),
            thickness=style.font(12), lenmode="pixels", len=max(min(at.grid.grid_h, style.font(420)), 120),
            x=colorbar_x / width, xanchor="left", xref="paper",
            y=1.0 - (gy0 + at.grid.grid_h / 2) / height, yanchor="middle", yref="paper",
            outlinewidth=0, tickfont=dict(size=style.font(11), color=colours.text), tickformat=tick_format(panel.limit),
        )  # fmt: skip
    return trace


def _colorbar_above(panel: MapPanel, at: _Placed, style: Style, colours: Palette, x: float) -> dict[str, Any]:
    """A horizontal colour bar in the band above the panel (colorbar_band), starting `x` px from the left."""
    width, height = at.canvas
    title_h = style.font(12) * 1.5
    title = dict(text=panel.colorbar_title, side="top", font=dict(size=style.font(12), color=colours.muted))
    return dict(
        orientation="h", title=title, thickness=style.font(10), lenmode="pixels",
        len=max(min(style.font(300), width - x - EDGE), 80), x=x / width, xanchor="left", xref="paper", xpad=0,
        y=1.0 - (at.origin[1] - colorbar_band(style) + title_h) / height, yanchor="top", yref="paper", ypad=0,
        outlinewidth=0, tickfont=dict(size=style.font(11), color=colours.text), tickformat=tick_format(panel.limit),
    )  # fmt: skip


def _map_axes(panel: MapPanel, at: _Placed, style: Style, colours: Palette) -> dict[str, Any]:
    """The map's x axis (text B's tokens) and y axis (text A's, first on top)."""
    width, height = at.canvas
    gx0, gy0, gx1, gy1 = at.grid_box
    n_rows, n_cols = panel.shape
    font = dict(size=at.grid.font, color=colours.text)
    title_font = dict(size=style.font(12), color=colours.muted)
    common = dict(showgrid=False, zeroline=False, automargin=True, ticks="", fixedrange=True, tickmode="array")
    # the row labels sit left of whatever is leftmost beside the grid: row totals (totals_left), POS strip, grid
    y_anchor = at.ids["x"]
    if at.strips:
        y_anchor = at.ax["x2"]
    if at.grid.totals_left and panel.totals and at.grid.totals_w > 0:
        y_anchor = at.ax["x4"]
    return {
        f"xaxis{at.suffix}": dict(
            domain=_domain_x(gx0, gx1, width), anchor=at.ax["y3"] if at.strips else at.ids["y"],
            tickvals=list(range(n_cols)), ticktext=panel.col_labels, tickangle=at.grid.angle, tickfont=font,
            title=dict(text=panel.axis_titles[1], font=title_font, standoff=6), range=[-0.5, n_cols - 0.5], **common,
        ),
        f"yaxis{at.suffix}": dict(
            domain=_domain_y(gy0, gy1, height), anchor=y_anchor,
            tickvals=list(range(n_rows)), ticktext=panel.row_labels, tickfont=font,
            title=dict(text=panel.axis_titles[0], font=title_font, standoff=6), range=[n_rows - 0.5, -0.5], **common,
        ),
    }  # fmt: skip


def _top_labels(panel: MapPanel, at: _Placed, colours: Palette) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tall map's column labels once more above it (over the column totals): an empty trace and its axis,
    a copy of the map's x axis on top, overlaying it (its own subplot would cover the map and take its hovers)."""
    width, height = at.canvas
    gx0, _, gx1, _ = at.grid_box
    n_cols = panel.shape[1]
    axis = dict(
        domain=_domain_x(gx0, gx1, width), overlaying=at.ids["x"], anchor="free",
        position=1.0 - (at.origin[1] + at.grid.top) / height,
        side="top", tickvals=list(range(n_cols)), ticktext=panel.col_labels, tickangle=at.grid.angle,
        tickfont=dict(size=at.grid.font, color=colours.text), range=[-0.5, n_cols - 0.5], showgrid=False,
        zeroline=False, ticks="", fixedrange=True, tickmode="array",
    )  # fmt: skip
    trace = dict(type="scatter", x=[], y=[], xaxis=at.ax["x6"], yaxis=at.ids["y"], showlegend=False, hoverinfo="skip")
    return trace, {f"xaxis{at.ax['x6'][1:]}": axis}


def _strips(panel: MapPanel, at: _Placed) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The POS strips beside the rows and under the columns: traces and their axes."""
    assert panel.pos_a is not None and panel.pos_b is not None
    width, height = at.canvas
    _, _, _, gy1 = at.grid_box
    categories = pos_categories(panel.pos_a, panel.pos_b)
    sx0 = at.origin[0] + at.grid.strip_x
    traces = [
        _pos_strip(panel.pos_a, panel.row_names or panel.row_labels, categories, True, at.ax["x2"], at.ids["y"]),
        _pos_strip(panel.pos_b, panel.col_names or panel.col_labels, categories, False, at.ids["x"], at.ax["y3"]),
    ]
    hidden = dict(range=[-0.5, 0.5], visible=False, fixedrange=True)
    axes = {
        f"xaxis{at.ax['x2'][1:]}": dict(
            domain=_domain_x(sx0, sx0 + at.grid.strip, width), anchor=at.ids["y"], **hidden
        ),
        f"yaxis{at.ax['y3'][1:]}": dict(
            domain=_domain_y(gy1 + GAP, gy1 + GAP + at.grid.strip, height), anchor=at.ids["x"], **hidden
        ),
    }
    return traces, axes


def _totals(
    panel: MapPanel, at: _Placed, style: Style, colours: Palette
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """Row sums as bars right of the map (left of it with totals_left), column sums above it: traces, axes,
    their two labels."""
    width, height = at.canvas
    gx0 = at.grid_box[0]
    oy = at.origin[1] + at.grid.top
    n_rows, n_cols = panel.shape
    matrix = np.asarray(panel.matrix, dtype=np.float64)
    rows, cols = np.nansum(matrix, axis=1), np.nansum(matrix, axis=0)
    names_a, names_b = panel.row_names or panel.row_labels, panel.col_names or panel.col_labels

    def colour(values: np.ndarray) -> list[str]:
        return [colours.positive if v >= 0 else colours.negative for v in values.tolist()]

    traces = [
        dict(
            type="bar", orientation="h", x=rows, y=list(range(n_rows)), marker=dict(color=colour(rows)),
            hovertext=_totals_hover(names_a, rows, panel.total_for_share, "row sum"),
            hovertemplate="%{hovertext}<extra></extra>", xaxis=at.ax["x4"], yaxis=at.ids["y"], name="row sums",
            showlegend=False,
        ),
        dict(
            type="bar", x=list(range(n_cols)), y=cols, marker=dict(color=colour(cols)),
            hovertext=_totals_hover(names_b, cols, panel.total_for_share, "column sum"),
            hovertemplate="%{hovertext}<extra></extra>", xaxis=at.ids["x"], yaxis=at.ax["y5"], name="column sums",
            showlegend=False,
        ),
    ]  # fmt: skip
    tx0 = at.origin[0] + at.grid.totals_x
    ty0 = oy + 2 * GAP  # a little air between the header and the bars
    bar_axis = dict(
        showgrid=False, showticklabels=False, ticks="", zeroline=True, zerolinecolor=colours.rule,
        zerolinewidth=1, showline=False, fixedrange=True,
    )  # fmt: skip
    axes = {
        f"xaxis{at.ax['x4'][1:]}": dict(
            domain=_domain_x(tx0, tx0 + at.grid.totals_w, width), anchor=at.ids["y"], range=_bar_range(rows), **bar_axis
        ),
        f"yaxis{at.ax['y5'][1:]}": dict(
            domain=_domain_y(ty0, oy + at.grid.totals_h, height), anchor=at.ids["x"], range=_bar_range(cols),
            **bar_axis,
        ),
    }  # fmt: skip
    note = dict(size=style.font(10), color=colours.muted)
    middle = 1.0 - (ty0 + at.grid.totals_h / 2) / height
    # left of the grid the column totals' label takes the band above the row totals: theirs goes below them
    row_label_y = 1.0 - (at.grid_box[3] + style.font(10)) / height if at.grid.totals_left else middle
    labels = [
        dict(
            text="Σ row", x=(tx0 + at.grid.totals_w / 2) / width, y=row_label_y, xref="paper", yref="paper",
            showarrow=False, font=note,
        ),
        dict(
            text="Σ column", x=(gx0 - 6) / width, y=middle, xref="paper", yref="paper", xanchor="right",
            showarrow=False, font=note,
        ),
    ]  # fmt: skip
    return traces, axes, labels


def _marks(
    panel: MapPanel, at: _Placed, style: Style, colours: Palette
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Outlines of the top pairs (shapes) and, when they fit, their rank numbers (annotations)."""
    shapes, annotations = [], []
    line = 2.5 if at.grid.cell >= 20 else 1.5
    ranks = len(panel.marks) <= RANK_LABELS_UP_TO and at.grid.cell >= 20
    for i, j, rank in panel.marks:
        shapes.append(
            dict(
                type="rect", xref=at.ids["x"], yref=at.ids["y"], x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                line=dict(color=outline_colour(panel, i, j, colours), width=line), fillcolor="rgba(0,0,0,0)",
                layer="above",
            )
        )  # fmt: skip
        if ranks:
            annotations.append(
                dict(
                    x=j, y=i, xref=at.ids["x"], yref=at.ids["y"], text=str(rank), showarrow=False,
                    font=dict(size=style.font(10), color=colours.outline), bgcolor=colours.rank_bg, borderpad=1,
                )
            )  # fmt: skip
    return shapes, annotations


def _place_panel(
    panel: MapPanel,
    grid: Grid,
    origin: tuple[float, float],
    canvas: tuple[float, float],
    index: int,
    style: Style,
    colours: Palette,
    *,
    colorbar_x: float | None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Traces, axes, shapes and annotations of one panel whose top-left corner is at `origin` (px); the colour
    bar at `colorbar_x` px from the left (None: none, another panel shows it)."""
    at = _placement(panel, grid, origin, canvas, index)
    traces = [_map_trace(panel, at, style, colours, colorbar_x)]
    axes = _map_axes(panel, at, style, colours)
    if grid.top > 0:
        top_trace, top_axis = _top_labels(panel, at, colours)
        traces.append(top_trace)
        axes.update(top_axis)
    annotations: list[dict[str, Any]] = []
    if at.strips:
        strip_traces, strip_axes = _strips(panel, at)
        traces += strip_traces
        axes.update(strip_axes)
    if panel.totals and grid.totals_w > 0:
        total_traces, total_axes, labels = _totals(panel, at, style, colours)
        traces += total_traces
        axes.update(total_axes)
        annotations += labels
    if panel.heading:
        width, height = canvas
        annotations.append(
            dict(
                text=panel.heading, x=(origin[0] + grid.left) / width, y=1.0 - (origin[1] - 4) / height,
                xref="paper", yref="paper", xanchor="left", yanchor="bottom", align="left", showarrow=False,
                font=dict(size=style.font(13), color=colours.text),
            )
        )  # fmt: skip
    shapes, ranks = _marks(panel, at, style, colours)
    return traces, axes, shapes, annotations + ranks


STRONG_CELL = 0.6  # |value| / colour limit from which a cell's colour is dark (light theme) or bright (dark)


def outline_colour(panel: MapPanel, i: int, j: int, colours: Palette) -> str:
    """The top-pair outline of cell (i, j): the theme's outline colour, or the paper colour on a cell
    whose own colour is as dark (light theme) or as bright (dark theme) as the outline, as clipped
    colour ranges make many cells, so every outline stays visible."""
    value = float(np.asarray(panel.matrix)[i, j])
    strong = math.isfinite(value) and panel.limit > 0 and abs(value) / panel.limit >= STRONG_CELL
    return colours.paper if strong else colours.outline


def tick_format(limit: float) -> str:
    """A d3 format with enough decimals to tell the colour bar's ticks apart (+.2f at least)."""
    digits = max(2, -math.floor(math.log10(limit))) if limit > 0 and math.isfinite(limit) else 2
    return f"+.{min(digits, 8)}f"


def _bar_range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = max(0.0, float(finite.max())) if finite.size else 1.0
    pad = 0.06 * ((high - low) or 1.0)
    return [low - (pad if low < 0 else 0), high + (pad if high > 0 else 0)]


def _legend(style: Style, colours: Palette, top: float, width: float, height: float) -> dict[str, Any]:
    return dict(
        orientation="h",
        x=EDGE / 2 / width,
        xref="paper",
        xanchor="left",
        y=1.0 - top / height,
        yref="paper",
        yanchor="top",
        font=dict(size=style.font(11), color=colours.text),
        entrywidth=style.font(LEGEND_TEXT),
        entrywidthmode="pixels",
        itemclick=False,
        itemdoubleclick=False,
        title=dict(text="POS ", font=dict(size=style.font(11), color=colours.muted)),
        bgcolor="rgba(0,0,0,0)",
    )


def _legend_traces(categories: list[str], style: Style) -> list[dict[str, Any]]:
    return [
        dict(
            type="scatter",
            x=[None],
            y=[None],
            mode="markers",
            marker=dict(symbol="square", size=style.font(11), color=UPOS_COLOURS.get(name, UNKNOWN_POS_COLOUR)),
            name=plotly_escape(name),
            showlegend=True,
            hoverinfo="skip",
        )
        for name in categories
    ]


LEGEND_TEXT = 60  # px of text per legend entry; plotly adds about 40 px for the symbol and gaps


def legend_rows(n_categories: int, width: float, style: Style) -> int:
    """Rows a horizontal POS legend of `n_categories` entries takes in a figure `width` px wide."""
    per_row = max(int((width - style.font(40)) // (style.font(LEGEND_TEXT) + 40)), 1)
    return math.ceil(n_categories / per_row) if n_categories else 0


def compose(
    panels: list[MapPanel],
    style: Style = PAGE,
    *,
    title: str,
    subtitle: str = "",
    extra_header: str = "",
    extra_header_lines: int = 0,
) -> go.Figure:
    """Panels side by side on one canvas, a title (and subtitle) above, one colour bar at the right.

    The canvas is the sum of the panels' pixel sizes, or style.canvas (cells then grow or
    shrink to fill it). The colour bar belongs to the first panel; side-by-side panels share
    its range (pass the same limit). extra_header: plotly HTML lines under the title.
    """
    colours = palette(style)
    strips = any(p.pos_a is not None and p.pos_b is not None for p in panels)
    categories = pos_categories(*(p.pos_a for p in panels), *(p.pos_b for p in panels)) if strips else []
    subtitle_lines = (1 if subtitle else 0) + extra_header_lines
    headings = any(p.heading for p in panels)
    heading_room = style.font(13) * 2.9 + 6 if headings else 0.0
    bar_w = colorbar_width(style)

    def sized(cell: float | None) -> tuple[list[Grid], float, float, int]:
        grids = [p.geometry(style, cell) for p in panels]
        body_w = sum(g.width for g in grids) + GAP * 6 * (len(grids) - 1)
        width = EDGE * 2 + body_w + bar_w
        width = max(width, text_width(len(_plain(title)), style.font(15)) * 0.92 + 2 * EDGE)
        if style.keys_left:  # the colour bar's title above the map
            width = max(width, text_width(len(_plain(panels[0].colorbar_title)), style.font(12)) * 0.92 + 2 * EDGE)
        if subtitle:
            width = max(width, text_width(len(_plain(subtitle)), style.font(12)) * 0.92 + 2 * EDGE)
        rows = legend_rows(len(categories), width, style)
        top = header_height(style, subtitle_lines, rows) + heading_room + colorbar_band(style)
        body_h = max(g.height for g in grids)
        return grids, width, top + body_h + EDGE, rows

    cell = None
    if style.canvas is not None:
        canvas_w, canvas_h = style.canvas
        grids, width, height, rows = sized(cell)
        fixed_h = height - max(g.height for g in grids)
        fixed_w = width - sum(g.width for g in grids)
        specs = [(p.shape[0], p.shape[1], p.row_chars, p.col_chars) for p in panels]
        cell = fit_cell(specs, style, canvas_w - fixed_w, canvas_h - fixed_h, strips=strips, totals=panels[0].totals)
    grids, width, height, rows = sized(cell)
    if style.canvas is not None:
        width, height = max(width, style.canvas[0]), max(height, style.canvas[1])
    width, height = float(math.ceil(width)), float(math.ceil(height))  # whole pixels: domains stay exact

    top = header_height(style, subtitle_lines, rows) + heading_room + colorbar_band(style)
    traces: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    panels_w = sum(g.width for g in grids) + GAP * 6 * (len(grids) - 1)
    content_w = panels_w + bar_w
    x = EDGE + max(0.0, (width - 2 * EDGE - content_w) / 2) if style.canvas is not None else EDGE
    # one colour bar, the first panel's: above the panels from their left edge (keys_left), else right of them
    colorbar_x = x if style.keys_left else x + panels_w + 12
    body_h = max(g.height for g in grids)
    for index, (panel, grid) in enumerate(zip(panels, grids, strict=True)):
        y = top + (body_h - grid.height) / 2 if style.canvas is not None else top
        last_x = x + grid.width
        t, axes, s, a = _place_panel(
            panel, grid, (x, y), (width, height), index, style, colours, colorbar_x=colorbar_x if index == 0 else None
        )
        traces += t
        layout.update(axes)
        shapes += s
        annotations += a
        x = last_x + GAP * 6
    if categories:
        traces += _legend_traces(categories, style)
        legend_top = header_height(style, subtitle_lines, 0) - 6
        layout["legend"] = _legend(style, colours, legend_top, width, height)
    if extra_header:
        below_title = EDGE + style.font(15) * 1.5 + (style.font(12) * 1.45 if subtitle else 0)
        annotations.append(
            dict(
                text=extra_header, x=EDGE / width, y=1.0 - below_title / height,
                xref="paper", yref="paper", xanchor="left", yanchor="top", align="left", showarrow=False,
                font=dict(size=style.font(12), color=colours.text),
            )
        )  # fmt: skip
    layout.update(base_layout(style, width, height, title, subtitle))
    layout.update(
        showlegend=bool(categories),
        shapes=shapes,
        annotations=annotations,
        dragmode=False,
        bargap=0.15,
        datarevision=data_revision(panels, style),
    )
    return fast_figure(traces, layout)


def data_revision(panels: Sequence[MapPanel], style: Style) -> str:
    """A digest of every array the panels' traces hold.

    plotly.react compares data arrays by identity, and the page sends new arrays on every rerun,
    so every rerun would recompute every trace; with an unchanged `datarevision` it keeps them and
    redraws only what changed (outlines for a top-k move): several times faster for long texts.
    """
    digest = hashlib.sha256(style.name.encode() + (b"dark" if style.dark else b"light"))
    for panel in panels:
        digest.update(np.ascontiguousarray(panel.matrix, dtype=np.float64).tobytes())
        text = [*panel.row_labels, *panel.col_labels, *panel.row_names, *panel.col_names, panel.template]
        text += [*(panel.pos_a or []), "|", *(panel.pos_b or []), repr(panel.total_for_share), repr(panel.totals)]
        if panel.customdata is not None:
            text.append(repr(panel.customdata.shape))
            text += [str(v) for v in np.asarray(panel.customdata, dtype=object).ravel().tolist()]
        digest.update("\x1f".join(text).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


_TAG = re.compile(r"<[^>]+>")


def _plain(text: str) -> str:
    """Plotly HTML without tags and with entities decoded: what is drawn, for width estimates."""
    return html.unescape(_TAG.sub("", text))


def fast_figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A go.Figure from plain dicts without plotly's per-property validation (several times faster).

    The builders' output is checked against plotly's validators in tests/page/test_components.py.
    """
    return go.Figure(data=traces, layout=layout, _validate=False)


# ----------------------------------------------------------------------------- the token-pair map


def map_panel(
    result: Attribution,
    *,
    top_k: int = 0,
    pos_overlay: bool = False,
    limit: float | None = None,
    clip: float | None = None,
    totals: bool = True,
    style: Style = PAGE,
) -> MapPanel:
    """The panel of one result: its matrix, labels, hover, outlines of the top_k strongest cells."""
    matrix = np.asarray(result.matrix, dtype=np.float64)
    overlay = pos_overlay and result.a.pos is not None and result.b.pos is not None
    colours = palette(style)
    pos_a = result.a.pos if overlay else None
    pos_b = result.b.pos if overlay else None
    n_a, n_b = matrix.shape
    k = max(0, min(int(top_k), n_a * n_b))
    marks = [(p.i, p.j, rank) for rank, p in enumerate(result.top_pairs(k), start=1)] if k else []
    return MapPanel(
        matrix=matrix,
        row_labels=tick_labels(result.a.tokens, pos_a, colours.muted),
        col_labels=tick_labels(result.b.tokens, pos_b, colours.muted),
        row_chars=label_chars(result.a.tokens, pos_a),
        col_chars=label_chars(result.b.tokens, pos_b),
        customdata=_hover_data(result),
        template=HOVER_TEMPLATE,
        limit=float(limit) if limit is not None and limit > 0 else symmetric_limit(matrix, clip=clip),
        colorbar_title=COLORBAR_TITLE,
        row_names=[plotly_escape(t) for t in result.a.tokens],
        col_names=[plotly_escape(t) for t in result.b.tokens],
        pos_a=list(pos_a) if pos_a is not None else None,
        pos_b=list(pos_b) if pos_b is not None else None,
        marks=marks,
        totals=totals,
        total_for_share=result.attribution_sum,
    )


def build_heatmap(
    result: Attribution,
    *,
    top_k: int = 0,
    pos_overlay: bool = False,
    zmax: float | None = None,
    clip: float | None = None,
    totals: bool = True,
    title: str | None = None,
    style: Style = PAGE,
    shared_by: int = 1,
) -> go.Figure:
    """Heatmap of `result.matrix`: rows = text A tokens, columns = text B tokens.

    Diverging colour scale centred on 0 with range [-zmax, zmax] (default: this matrix's
    largest |value|, or its `clip` percentile of |value|). top_k outlines the k strongest cells
    (numbered when k <= 20 and cells are large enough). pos_overlay adds UPOS strips along both
    axes, a POS legend and POS in the tick labels (ignored without POS tags). totals adds the
    row and column sums as bars beside the map. `title` is plotly HTML (escape user text).
    Square cells; the figure's width and height are set (see attribution.viz.layout).
    shared_by > 1: `zmax` is the range of that many models' maps, and the colour bar says so.
    """
    panel = map_panel(result, top_k=top_k, pos_overlay=pos_overlay, limit=zmax, clip=clip, totals=totals, style=style)
    clipped = clip if zmax is None or zmax <= 0 else None
    subtitle = figure_subtitle(result, clipped, panel.limit if clipped is not None else None)
    if shared_by > 1 and zmax is not None and zmax > 0:
        panel.colorbar_title = shared_scale_title(shared_by)
        note = "one colour scale for both models" if shared_by == 2 else f"one colour scale for all {shared_by} models"
        subtitle = f"{subtitle} · {note}" if subtitle else note
    return compose([panel], style, title=title if title is not None else figure_title(result), subtitle=subtitle)


def chart_config(fig: go.Figure | None, filename: str, scale: int = 4) -> dict[str, Any]:
    """plotly config: the camera button saves a PNG at `scale` x of the figure's own layout, named `filename`."""
    options: dict[str, Any] = {"format": "png", "filename": filename, "scale": max(int(scale), 3)}
    if fig is not None and fig.layout.width and fig.layout.height:
        options.update(width=int(fig.layout.width), height=int(fig.layout.height))
    return {
        "displaylogo": False,
        "responsive": False,
        "toImageButtonOptions": options,
        "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines", "zoom2d", "pan2d"],
    }


# ----------------------------------------------------------------------------- difference map


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


DIFFERENCE_MODES = ("raw", "share")


def difference_matrices(
    first: Attribution, second: Attribution, mode: str = "raw"
) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """Aligned word matrices, as raw contributions or (mode "share") as fractions of each model's own sum.

    Shares compare where each model puts its weight even when the two sums differ (2.6 vs 1.4
    makes nearly every raw difference positive).
    """
    if mode not in DIFFERENCE_MODES:
        raise ValueError(f"mode must be one of {DIFFERENCE_MODES}, not {mode!r}")
    rows, cols, m_1, m_2 = align_word_matrices(first, second)
    if mode == "share":
        m_1 = _as_share(m_1, first.attribution_sum)
        m_2 = _as_share(m_2, second.attribution_sum)
    return rows, cols, m_1, m_2


def _as_share(matrix: np.ndarray, total: float) -> np.ndarray:
    if not (math.isfinite(total) and total != 0):
        return np.full(matrix.shape, np.nan)
    return matrix / total


def build_difference_map(
    first: Attribution,
    second: Attribution,
    *,
    mode: str = "raw",
    zmax: float | None = None,
    clip: float | None = None,
    style: Style = PAGE,
) -> go.Figure:
    """Word-level map of first − second (same text pair, two models); mode "share" compares shares of each sum.

    Cells align by spaCy word index, so models with different tokenizers compare word for
    word; a word that one model truncated away is blank. Colour range symmetric around 0.
    """
    rows, cols, m_1, m_2 = difference_matrices(first, second, mode)
    diff = m_1 - m_2
    words_a = first.a.words or second.a.words or []
    words_b = first.b.words or second.b.words or []
    names_a = [words_a[w] if w < len(words_a) else f"word {w}" for w in rows]
    names_b = [words_b[w] if w < len(words_b) else f"word {w}" for w in cols]
    name_1 = plotly_escape(short_model_name(first.model_name))
    name_2 = plotly_escape(short_model_name(second.model_name))
    fmt = _percent if mode == "share" else _signed
    custom = np.empty((*diff.shape, 4), dtype=object)
    escaped_a = [plotly_escape(w) for w in names_a]
    escaped_b = [plotly_escape(w) for w in names_b]
    for i, word_a in enumerate(escaped_a):
        for j, word_b in enumerate(escaped_b):
            custom[i, j] = (word_a, word_b, fmt(m_1[i, j]), fmt(m_2[i, j]))
    value = "%{z:+.2%}" if mode == "share" else "%{z:+.4f}"
    template = (
        "<b>%{customdata[0]}</b> – <b>%{customdata[1]}</b><br>"
        f"{name_1} %{{customdata[2]}}<br>{name_2} %{{customdata[3]}}<br>"
        f"difference {value}<extra></extra>"
    )
    limit = float(zmax) if zmax is not None and zmax > 0 else symmetric_limit(diff, clip=clip)
    panel = MapPanel(
        matrix=diff,
        row_labels=tick_labels(names_a),
        col_labels=tick_labels(names_b),
        row_chars=label_chars(names_a),
        col_chars=label_chars(names_b),
        customdata=custom,
        template=template,
        limit=limit,
        colorbar_title=SHARE_DIFFERENCE_TITLE if mode == "share" else DIFFERENCE_TITLE,
        row_names=escaped_a,
        col_names=escaped_b,
        totals=True,
    )
    what = "shares of each model's sum" if mode == "share" else "raw contributions"
    subtitle = f"{what}; red: {name_1} credits the pair more, blue: {name_2} does"
    return compose([panel], style, title=f"<b>{name_1}</b> − <b>{name_2}</b> · word level", subtitle=subtitle)


def _signed(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else "–"


def _percent(value: float) -> str:
    return f"{100 * value:+.2f} %" if math.isfinite(value) else "–"


def figure_size(fig: go.Figure) -> tuple[int, int]:
    """(width, height) in px that a builder set on `fig`."""
    return int(fig.layout.width or 700), int(fig.layout.height or 500)


# ----------------------------------------------------------------------------- what-if: before and after

STATUS_MARKS = {"same": "", "changed": "", "removed": "✕ ", "added": "+ "}


def _status_labels(labels: Sequence[str], status: Sequence[str], colours: Palette) -> list[str]:
    out = []
    for label, state in zip(labels, status, strict=True):
        text = plotly_escape(shorten(label, 24 if state == "changed" else 18))
        if state == "same":
            out.append(text)
        else:
            colour = colours.positive if state != "removed" else colours.muted
            out.append(f"<span style='color:{colour}'>{STATUS_MARKS[state]}{text}</span>")
    return out


def build_change_map(comparison: Any, *, style: Style = PAGE, clip: float | None = None) -> go.Figure:
    """Map of after − before for one model (an `attribution.whatif.Comparison`).

    Rows and columns are the aligned tokens of both versions: '✕ token' only before (dropped),
    '+ token' only after, 'old → new' at the same position. A cell missing in one version counts
    as 0 there, so the cells add up to the change of the attribution sum.
    """
    colours = palette(style)
    before, after = comparison.result_before, comparison.result_after
    change = np.asarray(comparison.change, dtype=np.float64)
    rows, cols = comparison.rows, comparison.cols
    names_a = [plotly_escape(label) for label in rows.labels]
    names_b = [plotly_escape(label) for label in cols.labels]
    custom = np.empty((*change.shape, 4), dtype=object)
    for i, name_a in enumerate(names_a):
        for j, name_b in enumerate(names_b):
            custom[i, j] = (name_a, name_b, _signed(comparison.before[i, j]), _signed(comparison.after[i, j]))
    template = (
        "<b>%{customdata[0]}</b> – <b>%{customdata[1]}</b><br>"
        "before %{customdata[2]}<br>after %{customdata[3]}<br>change %{z:+.4f}<extra></extra>"
    )
    panel = MapPanel(
        matrix=change,
        row_labels=_status_labels(rows.labels, rows.status, colours),
        col_labels=_status_labels(cols.labels, cols.status, colours),
        row_chars=max((len(shorten(t, 24)) + 2 for t in rows.labels), default=4),
        col_chars=max((len(shorten(t, 24)) + 2 for t in cols.labels), default=4),
        customdata=custom,
        template=template,
        limit=symmetric_limit(change, clip=clip),
        colorbar_title="change (after − before)",
        row_names=names_a,
        col_names=names_b,
        totals=True,
        total_for_share=math.nan,
    )
    label = similarity_label(before)
    title = (
        f"<b>{plotly_escape(short_model_name(before.model_name))}</b> · what if · {label} "
        f"{before.own_score:.3f} → {after.own_score:.3f} ({comparison.score_change:+.3f})"
    )
    subtitle = (
        f"after − before, layer {before.layer}; cells sum {before.attribution_sum:+.3f} → "
        f"{after.attribution_sum:+.3f}; ✕ dropped, + added, old → new masked or replaced"
    )
    return compose([panel], style, title=title, subtitle=subtitle)
