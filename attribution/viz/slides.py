"""16:9 slides (1920 x 1080 px) of one or several models' results, readable at any text length.

A slide holds both texts as text, each model's name, score, breakdown and how much of the score
the map explains, a colour legend, the top pairs, and the map. No label is drawn below
MIN_LABEL_PX: when the whole map would need smaller labels, the slide shows a summary instead,
first the word-level map, then the rows and columns of the strongest pairs, and says so.
Pure: results in, a plotly figure out.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..result import Attribution
from ..result.explained import explain_score, percent
from .heatmap import compose, fast_figure, map_panel, plotly_escape, short_model_name, similarity_label, symmetric_limit
from .layout import FONT, Style, palette, shorten, text_width

WIDTH, HEIGHT = 1920, 1080
MIN_LABEL_PX = 14.0  # the smallest tick label a slide draws (at 1920 x 1080)
SIDE_W = 600  # px: the right-hand column (scores, top pairs)
TEXT_LINES = 3  # lines of each text shown before it is cut
TOP_ROWS = 8  # top pairs listed per slide (split between models)


@dataclass(frozen=True)
class SlideMap:
    """What a slide's map shows: the views (possibly summarised) and a note saying how."""

    views: list[Attribution]
    note: str


def strongest_rows_and_columns(result: Attribution, rows: int, cols: int) -> Attribution:
    """The result cut to the `rows` rows and `cols` columns with the largest |cell|, in text order.

    attribution_sum is unchanged, so shares stay shares of the full sum.
    """
    matrix = np.abs(np.nan_to_num(np.asarray(result.matrix, dtype=np.float64)))
    keep_rows = np.zeros(matrix.shape[0], dtype=bool)
    keep_cols = np.zeros(matrix.shape[1], dtype=bool)
    keep_rows[np.argsort(-matrix.max(axis=1), kind="stable")[: max(rows, 1)]] = True
    keep_cols[np.argsort(-matrix.max(axis=0), kind="stable")[: max(cols, 1)]] = True
    cut = np.asarray(result.matrix)[np.ix_(keep_rows, keep_cols)]
    return result.replace(matrix=cut, a=result.a.select(keep_rows.tolist()), b=result.b.select(keep_cols.tolist()))


def _map_figure(views: Sequence[Attribution], top_k: int, clip: float | None, box: tuple[int, int]) -> go.Figure:
    style = Style(font_scale=1.4, canvas=box, name="slide")
    limit = symmetric_limit(*(v.matrix for v in views), clip=clip)
    panels = []
    for view in views:
        k = min(top_k, view.matrix.size)
        panel = map_panel(view, top_k=k, limit=limit, totals=True, style=style)
        if len(views) > 1:
            panel.heading = f"<b>{plotly_escape(short_model_name(view.model_name))}</b>"
        panels.append(panel)
    return compose(panels, style, title="")


def _label_px(fig: go.Figure) -> float:
    """The tick label size of the figure's first map (px)."""
    return float(fig.layout.xaxis.tickfont.size)


def _fits(fig: go.Figure, box: tuple[int, int]) -> bool:
    return _label_px(fig) >= MIN_LABEL_PX and fig.layout.width <= box[0] + 1 and fig.layout.height <= box[1] + 1


def slide_map(
    views: Sequence[Attribution], top_k: int, clip: float | None, box: tuple[int, int]
) -> tuple[SlideMap, go.Figure]:
    """The map part of a slide: the views as given when their labels stay >= MIN_LABEL_PX, else a summary."""
    chosen = list(views)
    fig = _map_figure(chosen, top_k, clip, box)
    if _fits(fig, box):
        return SlideMap(chosen, ""), fig
    note = ""
    if all(v.level == "token" and v.is_annotated for v in chosen):
        words = [v.to_words(keep_special=False) for v in chosen]
        fig = _map_figure(words, top_k, clip, box)
        if _fits(fig, box):
            return SlideMap(words, "word level: too many tokens for readable labels"), fig
        chosen, note = words, "word level, "
    n_rows = max(v.shape[0] for v in chosen)
    n_cols = max(v.shape[1] for v in chosen)
    rows, cols = n_rows, n_cols
    while rows > 2 or cols > 2:
        rows, cols = max(2, math.floor(rows * 0.85)), max(2, math.floor(cols * 0.85))
        cut = [strongest_rows_and_columns(v, rows, cols) for v in chosen]
        fig = _map_figure(cut, top_k, clip, box)
        if _fits(fig, box):
            break
    shown = f"{note}the {cut[0].shape[0]} rows and {cut[0].shape[1]} columns with the strongest pairs"
    return SlideMap(cut, f"{shown} (of {n_rows} × {n_cols}; the full map is in the HTML and CSV downloads)"), fig


def _embed(target: dict[str, Any], traces: list[Any], part: go.Figure, origin: tuple[float, float]) -> None:
    """Move the figure `part` (its own pixel canvas) to `origin` on the slide: axes, annotations, colour bar."""
    w, h = float(part.layout.width), float(part.layout.height)
    ox, oy = origin

    def x(value: float) -> float:
        return (ox + value * w) / WIDTH

    def y(value: float) -> float:
        return 1.0 - (oy + (1.0 - value) * h) / HEIGHT

    layout = part.layout.to_plotly_json()
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")) and "domain" in axis:
            d0, d1 = axis["domain"]
            axis["domain"] = [x(d0), x(d1)] if key.startswith("x") else [y(d0), y(d1)]
            target[key] = axis
    for note in layout.get("annotations", []):
        if note.get("xref") == "paper":
            note["x"] = x(note["x"])
        if note.get("yref") == "paper":
            note["y"] = y(note["y"])
        target.setdefault("annotations", []).append(note)
    target.setdefault("shapes", []).extend(layout.get("shapes", []))
    if "legend" in layout:
        target["legend"] = {**layout["legend"], "x": x(layout["legend"]["x"]), "y": y(layout["legend"]["y"])}
    for trace in part.data:
        data = trace.to_plotly_json()
        bar = data.get("colorbar")
        if bar:
            bar["x"], bar["y"] = x(bar["x"]), y(bar["y"])
        traces.append(data)


def _wrap(text: str, chars: int, lines: int) -> list[str]:
    """`text` wrapped at `chars`, at most `lines` lines (the last ends with … when cut), escaped."""
    wrapped = textwrap.wrap(" ".join(text.split()), chars) or [""]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], shorten(wrapped[lines - 1], chars - 1) + " …"]
    return [plotly_escape(line) for line in wrapped]


def _text(text: str, x: float, y: float, size: float, colour: str, **extra: Any) -> dict[str, Any]:
    return dict(
        text=text, x=x / WIDTH, y=1.0 - y / HEIGHT, xref="paper", yref="paper", xanchor="left", yanchor="top",
        align="left", showarrow=False, font=dict(size=size, color=colour, family=FONT), **extra,
    )  # fmt: skip


def _score_lines(view: Attribution, chars: int) -> list[str]:
    label = similarity_label(view)
    told = explain_score(view)
    head = f"<b>{plotly_escape(short_model_name(view.model_name))}</b> · layer {view.layer} of {view.num_layers}"
    score = f"{label} <b>{view.own_score:.3f}</b>"
    if view.mode == "exact":
        score += f" · exact-mode target {view.score:.3f}"
    parts = f"= map {view.attribution_sum:+.3f} + empty reference {view.reference_terms:+.3f}"
    if abs(view.integration_error) >= 5e-4:
        parts += f" − error {view.integration_error:+.3f}"
    share = f"the map explains <b>{percent(told.share)}</b> of the score"
    return [head, score, parts, *textwrap.wrap(share, chars)]


def build_slide(
    views: Sequence[Attribution], *, top_k: int = 5, clip: float | None = None, dark: bool = False
) -> go.Figure:
    """A 1920 x 1080 slide of one or several models' results for the same pair (views at the level shown)."""
    if not views:
        raise ValueError("build_slide needs at least one result.")
    colours = palette(Style(dark=dark))
    first = views[0]
    traces: list[Any] = []
    layout: dict[str, Any] = {}
    names = ", ".join(short_model_name(v.model_name) for v in views)
    title = f"<b>PairLens</b> · why {plotly_escape(names)} {'finds' if len(views) == 1 else 'find'} these texts similar"
    notes = [_text(title, 40, 28, 34, colours.text)]
    chars = int((WIDTH - 80) / text_width(1, 20) * 1.05)
    y = 88.0
    for label, text in (("A", first.a.text), ("B", first.b.text)):
        lines = _wrap(text, chars - 4, TEXT_LINES)
        notes.append(_text(f"<b>{label}</b>  " + "<br>    ".join(lines), 40, y, 20, colours.text))
        y += len(lines) * 27 + 10
    top = y + 16
    box = (int(WIDTH - SIDE_W - 80), int(HEIGHT - top - 70))
    chosen, fig = slide_map(views, top_k, clip, box)
    _embed(layout, traces, fig, (40 + max(0.0, (box[0] - float(fig.layout.width)) / 2), top))
    level = "words" if chosen.views[0].level == "word" else "tokens"
    footer = f"{level} · red raises, blue lowers the similarity · one colour scale for all maps"
    if chosen.note:
        footer = f"{chosen.note} · {footer}"
    notes.append(_text(plotly_escape(footer), 40, HEIGHT - 52, 18, colours.muted))

    side_x, side_chars = WIDTH - SIDE_W, int(SIDE_W / text_width(1, 20))
    y = top
    per_model = max(TOP_ROWS // len(views), 3)
    for view in views:
        lines = _score_lines(view, side_chars)
        notes.append(_text("<br>".join(lines), side_x, y, 20, colours.text))
        y += len(lines) * 27 + 12
        pairs = view.top_pairs(min(per_model, view.matrix.size))
        rows = [
            f"{rank}. {plotly_escape(shorten(p.token_a, 16))} – {plotly_escape(shorten(p.token_b, 16))}  "
            f"{p.value:+.3f}" + (f" ({100 * p.share:.1f} %)" if math.isfinite(p.share) else "")
            for rank, p in enumerate(pairs, start=1)
        ]
        notes.append(_text("<b>top pairs</b><br>" + "<br>".join(rows), side_x, y, 18, colours.text))
        y += (len(rows) + 1) * 24 + 24
    layout.setdefault("annotations", [])
    layout["annotations"] = notes + layout["annotations"]
    layout.update(
        width=WIDTH, height=HEIGHT, autosize=False, margin=dict(l=0, r=0, t=0, b=0, pad=0),
        font=dict(family=FONT, color=colours.text), paper_bgcolor=colours.paper, plot_bgcolor=colours.paper,
        showlegend="legend" in layout, dragmode=False, bargap=0.15,
    )  # fmt: skip
    return fast_figure(traces, layout)


def slide_label_sizes(fig: go.Figure) -> list[float]:
    """The size (px) of every drawn tick label font on a slide, for checks."""
    sizes = []
    for key, axis in fig.layout.to_plotly_json().items():
        if key.startswith(("xaxis", "yaxis")) and axis.get("visible", True) and axis.get("ticktext"):
            sizes.append(float(axis.get("tickfont", {}).get("size", 12)))
    return sizes
