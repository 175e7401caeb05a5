"""Figure layout and the new views: square cells, totals, clipping, themes, slides, links, sweep, exports."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from test_components import make_result, word_result

from attribution.viz import exports
from attribution.viz.combined import build_combined, combined_stem
from attribution.viz.heatmap import (
    build_difference_map,
    build_heatmap,
    difference_matrices,
    symmetric_limit,
)
from attribution.viz.layout import EDGE, MIN_CELL, SLIDE, Style
from attribution.viz.links import build_links
from attribution.viz.sweep import build_sweep
from attribution.viz.tables import decomposition, exact_mode_warning, score_card_html

ROOT = Path(__file__).resolve().parents[2]


def tokens(n: int, word: str = "token") -> list[str]:
    return ["[CLS]", *(f"{word}{k}" for k in range(n - 2)), "[SEP]"]


def cell_px(fig: go.Figure, axis: str = "") -> tuple[float, float]:
    """(cell width, cell height) in px of the heatmap on xaxis{axis}/yaxis{axis}."""
    x, y = fig.layout[f"xaxis{axis}"], fig.layout[f"yaxis{axis}"]
    n_cols, n_rows = len(x.tickvals), len(y.tickvals)
    width = (x.domain[1] - x.domain[0]) * fig.layout.width / n_cols
    height = (y.domain[1] - y.domain[0]) * fig.layout.height / n_rows
    return width, height


@pytest.mark.parametrize("n_a, n_b", [(3, 4), (11, 9), (30, 8), (60, 60), (120, 40)])
def test_cells_are_square_with_a_minimum_size(n_a: int, n_b: int) -> None:
    fig = build_heatmap(make_result(tokens(n_a), tokens(n_b, "w")), top_k=5, pos_overlay=True)
    width, height = cell_px(fig)
    assert width == pytest.approx(height, abs=0.01)
    assert width >= MIN_CELL
    for axis in ("xaxis", "yaxis"):
        low, high = fig.layout[axis].domain
        assert 0 <= low < high <= 1  # the grid lies on the canvas; labels get the room around it


def test_long_labels_get_room_and_rotate_when_cells_are_narrow() -> None:
    short = build_heatmap(make_result(["a", "b"], ["c", "d"], special_ends=False))
    long = build_heatmap(make_result(tokens(60), tokens(60, "renewables")))
    assert short.layout.xaxis.tickangle == 0 and long.layout.xaxis.tickangle == -90
    # room left of the grid for 14-character row labels at 10 px
    assert long.layout.xaxis.domain[0] * long.layout.width >= 14 * 10 * 0.55


def test_row_and_column_totals_sum_the_matrix() -> None:
    matrix = np.array([[0.1, -0.4, 0.2], [0.3, 0.0, -0.1]])
    fig = build_heatmap(make_result(["a", "b"], ["c", "d", "e"], matrix, special_ends=False))
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    np.testing.assert_allclose(bars["row sums"].x, matrix.sum(axis=1))
    np.testing.assert_allclose(bars["column sums"].y, matrix.sum(axis=0))
    assert "row sum" in bars["row sums"].hovertext[0] and "of the sum" in bars["row sums"].hovertext[0]
    assert not [t for t in build_heatmap(make_result(["a"], ["b"]), totals=False).data if t.type == "bar"]


@pytest.mark.parametrize("pos", [False, True])
def test_page_maps_keep_their_colour_bar_and_row_totals_at_the_left_edge(pos: bool) -> None:
    """keys_left (the page's maps, which may scroll sideways in a narrow column): the colour bar lies
    horizontally above the map from the figure's left edge, the row totals between the row labels and the
    grid; the exports' layout (PAGE) keeps both right of the map."""
    result = make_result(["[CLS]", *tokens(20), "[SEP]"], ["[CLS]", *tokens(35), "[SEP]"], pos=pos)
    page = build_heatmap(result, pos_overlay=pos, style=Style(keys_left=True))
    width, height = page.layout.width, page.layout.height
    bar = page.data[0].colorbar
    grid_x0, grid_top = page.layout.xaxis.domain[0] * width, (1 - page.layout.yaxis.domain[1]) * height
    totals = page.layout.xaxis4.domain
    assert bar.orientation == "h" and bar.x * width <= EDGE + 1 and bar.len + bar.x * width <= width
    assert (1 - bar.y) * height < (1 - page.layout.yaxis5.domain[1]) * height < grid_top  # above the column totals
    assert totals[1] * width < grid_x0  # row totals left of the grid...
    assert page.layout.yaxis.anchor == "x4"  # ...and the row labels left of them
    ticks = [a for a in page.layout.annotations if a.text in ("Σ row", "Σ column")]
    assert len({(round(a.x, 3), round(a.y, 3)) for a in ticks}) == 2  # the two labels do not sit on each other
    classic = build_heatmap(result, pos_overlay=pos)
    assert classic.layout.xaxis4.domain[0] > classic.layout.xaxis.domain[1]
    assert classic.data[0].colorbar.x > classic.layout.xaxis.domain[1]
    assert page.layout.width < classic.layout.width  # no colour bar column at the right


def test_percentile_clipping_narrows_the_colour_range_and_says_so() -> None:
    matrix = np.full((10, 10), 0.01)
    matrix[0, 0] = 1.0
    assert symmetric_limit(matrix) == 1.0
    assert symmetric_limit(matrix, clip=95) == pytest.approx(0.01)
    fig = build_heatmap(make_result(tokens(10), tokens(10), matrix), clip=95)
    assert fig.data[0].zmax == pytest.approx(0.01) and fig.data[0].zmin == pytest.approx(-0.01)
    assert "95th percentile" in fig.layout.title.subtitle.text
    assert fig.data[0].colorbar.tickformat == "+.2f"
    tiny = build_heatmap(make_result(["a"], ["b"], np.array([[0.004]]), special_ends=False))
    assert tiny.data[0].colorbar.tickformat == "+.3f"  # ticks of a small range stay distinct


def test_exact_mode_on_an_off_the_shelf_model_is_named_and_warned() -> None:
    result = make_result(["a"], ["b"], special_ends=False, mode="exact", score=0.829, model_score=0.573)
    result = result.replace(exact_model=False)
    fig = build_heatmap(result)
    assert "cosine 0.573" in fig.layout.title.text and "0.829" not in fig.layout.title.text
    assert "0.829" in fig.layout.title.subtitle.text and "not an exact model" in fig.layout.title.subtitle.text
    card = score_card_html(result)
    assert card.index("0.573") < card.index("exact-mode target") < card.index("0.829")
    warning = exact_mode_warning(result)
    assert warning is not None and "0.573" in warning and "approximate" in warning
    assert exact_mode_warning(result.replace(exact_model=True)) is None
    assert exact_mode_warning(result.replace(mode="approximate")) is None


def test_decomposition_adds_up_to_the_explained_score() -> None:
    result = make_result(["a", "b"], ["c"], special_ends=False, score=0.57, target=2.1, attribution_sum=2.1003,
                         integration_error=0.0003, reference_terms=0.57 - 2.1)  # fmt: skip
    terms = decomposition(result)
    assert terms[-1].kind == "total" and terms[-1].value == pytest.approx(0.57)
    assert sum(t.value for t in terms[:-1]) == pytest.approx(0.57, abs=1e-12)
    assert "pl-decomp" in score_card_html(result)


def test_difference_in_shares_compares_where_each_model_puts_its_weight() -> None:
    words_a, words_b = ["dogs", "run"], ["puppies", "play"]
    first = word_result(words_a, words_b, [0, 1], [0, 1], np.array([[2.0, 0.5], [0.5, 1.0]]), "m1")
    second = word_result(words_a, words_b, [0, 1], [0, 1], np.array([[1.0, 0.25], [0.25, 0.5]]), "m2")
    _, _, raw_1, raw_2 = difference_matrices(first, second, "raw")
    assert (raw_1 - raw_2 > 0).all()  # raw: the larger sum makes every cell red
    _, _, s_1, s_2 = difference_matrices(first, second, "share")
    np.testing.assert_allclose(s_1 - s_2, 0.0, atol=1e-12)  # same weighting: no difference
    fig = build_difference_map(first, second, mode="share")
    assert "share" in fig.data[0].colorbar.title.text and "%" in fig.data[0].hovertemplate


def test_styles_dark_and_slide() -> None:
    result = make_result(tokens(11), tokens(9))
    dark = build_heatmap(result, style=Style(dark=True))
    assert dark.layout.paper_bgcolor == "#0e1117" and dark.layout.font.color != build_heatmap(result).layout.font.color
    slide = build_heatmap(result, top_k=3, style=SLIDE)
    assert (slide.layout.width, slide.layout.height) == (1920, 1080)
    assert slide.layout.title.font.size > build_heatmap(result).layout.title.font.size * 1.5
    assert cell_px(slide)[0] > cell_px(build_heatmap(result))[0]  # the slide's cells grow to fill 16:9


def test_title_keeps_a_margin_from_the_top_edge() -> None:
    fig = build_heatmap(make_result(["a"], ["b"]))
    assert fig.layout.title.yref == "container" and fig.layout.title.yanchor == "top"
    assert (1 - fig.layout.title.y) * fig.layout.height == pytest.approx(EDGE)


def test_links_draw_one_line_per_strong_pair() -> None:
    matrix = np.array([[0.01, -0.9, 0.02], [0.5, 0.03, 0.04], [0.0, 0.2, -0.6]])
    result = make_result(["a", "b", "c"], ["d", "e", "f"], matrix, special_ends=False)
    fig = build_links(result, 3)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 3
    strongest = max(lines, key=lambda t: t.line.width)
    assert (strongest.y[0], strongest.y[-1]) == (0, 1) and "#1" in strongest.hovertemplate
    assert next(t for t in fig.data if t.mode == "text").text[0] == "<b>a</b>"


def test_sweep_shows_one_miniature_per_layer_and_outlines_the_chosen() -> None:
    results = [make_result(tokens(5), tokens(4), layer=k) for k in (2, 0, 1)]
    fig = build_sweep(results, chosen=1)
    assert [t.name for t in fig.data] == ["layer 0", "layer 1", "layer 2"]
    assert len(fig.layout.shapes) == 1
    shared = build_sweep(results, shared=True)
    assert len({t.zmax for t in shared.data}) == 1


def test_combined_figure_has_both_sentences_every_model_and_its_breakdown() -> None:
    first = make_result(tokens(6), tokens(5), model="m-one")
    second = make_result(tokens(6), tokens(5), model="m-two")
    fig = build_combined([first, second], top_k=2)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert first.a.text.split()[0] in texts and first.b.text.split()[0] in texts
    assert "m-one" in texts and "m-two" in texts and "cells" in texts and "reference" in texts
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and heatmaps[0].zmax == heatmaps[1].zmax  # one colour range
    assert combined_stem([first, second]).endswith("_combined")
    assert build_combined([first], style=SLIDE).layout.width == 1920


def test_every_builder_passes_plotly_validation() -> None:
    result = make_result(tokens(6), tokens(5))
    words = word_result(["a", "b"], ["c"], [0, 1], [0], np.array([[0.1], [0.2]]), "m1")
    other = word_result(["a", "b"], ["c"], [0, 1], [0], np.array([[0.3], [0.1]]), "m2")
    figures = [
        build_heatmap(result, top_k=3, pos_overlay=True, clip=95),
        build_heatmap(result, style=SLIDE),
        build_difference_map(words, other, mode="share"),
        build_links(result, 4, style=Style(dark=True)),
        build_sweep([result, result.replace(layer=2)]),
        build_combined([result, result], pos_overlay=True),
    ]
    for fig in figures:
        validated = go.Figure(fig.to_dict())
        assert validated.layout.width == fig.layout.width


def test_downloads_are_named_after_the_pair_and_html_has_a_title() -> None:
    result = make_result(["a"], ["b"], special_ends=False)

    def build(style: Style) -> go.Figure:
        return build_heatmap(result, style=style)

    items = exports.figure_downloads(build, "stem")
    assert [i.filename for i in items] == [
        "stem.html", "stem.png", "stem.svg", "stem_slide.png", "stem_slide.svg", "stem_slide.pdf"
    ]  # fmt: skip
    page = next(i for i in items if i.filename.endswith(".html")).make()
    assert isinstance(page, str) and "<title>toy-model · layer 5 of 6 · cosine 0.500</title>" in page
    assert [i.filename for i in exports.result_downloads(result, "s")] == ["s.csv", "s.json"]


def test_server_side_slide_export_is_16_by_9() -> None:
    ok, note = exports.renderer_status()
    if not ok:
        pytest.skip(f"no server-side renderer: {note}")
    result = make_result(tokens(8), tokens(7))
    png = exports.figure_image(build_heatmap(result, style=SLIDE), "png", scale=1)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1920, 1080)
    svg = exports.figure_image(build_heatmap(result), "svg").decode()
    assert 'class="gtitle"' in svg or "gtitle" in svg


def test_notebook_display_renders_the_same_heatmap(monkeypatch: pytest.MonkeyPatch) -> None:
    result = make_result(tokens(5), tokens(4))
    shown: list[Any] = []
    monkeypatch.setattr(go.Figure, "show", lambda self, *a, **k: shown.append(self))
    fig = result.show(top_k=2)
    assert shown == [fig] and len(fig.layout.shapes) == 2
    html = result._repr_html_()
    assert "plotly" in html and "toy-model" in html and html.lstrip().startswith("<div")
    # importing the result record (and the package) does not import plotly or the viz package
    code = "import sys, attribution.result.record; print(any(m.split('.')[0] == 'plotly' or "
    code += "m.startswith('attribution.viz') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
    assert math.isfinite(result.own_score)


def test_a_long_map_repeats_its_column_labels_above_it_and_a_short_one_does_not() -> None:
    """60 rows of 13 px cells (780 px) scroll the bottom labels out of view: the same labels sit on top,
    above the column totals, in the figure; a 6-row map keeps them at the bottom only."""
    long = build_heatmap(make_result(tokens(60), tokens(12, "w")), top_k=3, pos_overlay=True)
    top = [a for name, a in long.layout.to_plotly_json().items() if name.startswith("xaxis") and a.get("side") == "top"]
    assert len(top) == 1
    assert list(top[0]["ticktext"]) == list(long.layout.xaxis.ticktext) and list(top[0]["tickvals"]) == list(
        long.layout.xaxis.tickvals
    )
    assert list(top[0]["domain"]) == list(long.layout.xaxis.domain)  # over the same columns
    totals_top = long.layout.yaxis5.domain[1]  # the column totals' bars sit below the repeated labels
    assert totals_top < top[0]["position"] <= 1.0 and top[0]["position"] > long.layout.yaxis.domain[1]
    assert any(t.xaxis == "x6" and t.hoverinfo == "skip" for t in long.data)  # the axis is drawn (an empty trace)
    short = build_heatmap(make_result(tokens(6), tokens(5, "w")))
    assert not any(
        name.startswith("xaxis") and a.get("side") == "top" for name, a in short.layout.to_plotly_json().items()
    )
