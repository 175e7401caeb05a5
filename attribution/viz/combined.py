"""One figure for a report or a slide: every model's map side by side, both sentences, each score's breakdown.

The maps share one colour range (one colour bar), so equal colours mean equal contributions
across models. Pure: results (already at the level shown) in, a plotly figure out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go

from ..result import Attribution
from .heatmap import (
    compose,
    map_panel,
    pair_hash,
    plotly_escape,
    shared_scale_title,
    short_model_name,
    similarity_label,
    symmetric_limit,
)
from .layout import PAGE, Style, text_width


def breakdown_line(result: Attribution) -> str:
    """'cosine 0.573 = cells +2.154 + reference −1.581 − error +0.000' (plotly HTML, escaped)."""
    label = similarity_label(result)
    parts = f"cells {result.attribution_sum:+.3f} · reference {result.reference_terms:+.3f}"
    if abs(result.integration_error) >= 5e-4:
        parts += f" · error {-result.integration_error:+.3f}"
    if result.mode == "exact":
        line = f"exact-mode {label} {result.score:.3f} = {parts}"
        return f"{line}<br>the model's own {label}: {result.own_score:.3f}"
    return f"{label} {result.score:.3f} = {parts}"


def combined_stem(results: Sequence[Attribution]) -> str:
    """pairlens_<n>-models_<level>_<pair hash>_combined."""
    first = results[0]
    return f"pairlens_{len(results)}-models_{first.level}_{pair_hash(first.a.text, first.b.text)}_combined"


def _wrap(label: str, text: str, chars: int) -> list[str]:
    lines = textwrap.wrap(" ".join(text.split()), max(chars, 20)) or [""]
    escaped = [plotly_escape(line) for line in lines]
    return [f"<b>{label}</b>  {escaped[0]}", *escaped[1:]]


def build_combined(
    views: Sequence[Attribution],
    *,
    top_k: int = 0,
    pos_overlay: bool = False,
    clip: float | None = None,
    style: Style = PAGE,
    max_text_lines: int = 4,
) -> go.Figure:
    """The shown view of each model side by side under both sentences, one colour range for all."""
    if not views:
        raise ValueError("build_combined needs at least one result.")
    limit = symmetric_limit(*(v.matrix for v in views), clip=clip)
    panels = []
    for view in views:
        panel = map_panel(view, top_k=top_k, pos_overlay=pos_overlay, limit=limit, totals=True, style=style)
        if len(views) > 1:
            panel.colorbar_title = shared_scale_title(len(views))
        name = plotly_escape(short_model_name(view.model_name))
        panel.heading = f"<b>{name}</b> · layer {view.layer} of {view.num_layers}<br>{breakdown_line(view)}"
        panels.append(panel)
    first = views[0]
    width_guess = sum(p.geometry(style).width for p in panels) + 120
    if style.canvas is not None:
        width_guess = style.canvas[0]
    chars = int((width_guess - 40) / (text_width(1, style.font(12)) * 0.92))
    lines = _wrap("A", first.a.text, chars)[:max_text_lines] + _wrap("B", first.b.text, chars)[:max_text_lines]
    level = "words" if first.level == "word" else "tokens"
    if clip is not None:
        scale = f"one colour scale for all, saturating at ±{limit:.3g} ({clip:g}th percentile)"
    else:
        scale = "one colour scale for all models" if len(views) > 1 else "colour range ±" + f"{limit:.3g}"
    return compose(
        panels,
        style,
        title=f"<b>PairLens</b> · why the models find these texts similar · {level} · {scale}",
        extra_header="<br>".join(lines),
        extra_header_lines=len(lines),
    )
