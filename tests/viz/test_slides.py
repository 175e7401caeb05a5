"""16:9 slides at any text length: texts, names, scores, breakdown, legend, top pairs; labels never below 14 px."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from attribution.viz import exports
from attribution.viz.slides import MIN_LABEL_PX, build_slide, slide_label_sizes, strongest_rows_and_columns

SHORT = ("A man is playing a guitar on stage.", "Someone performs music with an instrument.")


STORY = (
    "the cat sat on a mat while his dog ran in the park and two birds sang near an old tree by our small house "
    "with red doors so every child could see how green fields grow under warm sun each day when rain falls over "
    "hills then rivers flow down to blue sea far away from town"
)
WORDS = STORY.split()


def sixty_tokens(shift: int) -> str:
    """58 common one-token words (60 MiniLM tokens with [CLS] and [SEP]), starting at word `shift`."""
    words = WORDS[shift:] + WORDS[:shift]
    return " ".join((words * 2)[:58])


def long_pair() -> tuple[str, str]:
    """A 63-word text A and a 124-word text B (the audit's long pair was 63 + 124 words)."""
    a = (sixty_tokens(0) + " " + sixty_tokens(5)).split()[:63]
    b = (sixty_tokens(3) + " " + sixty_tokens(9) + " " + sixty_tokens(11)).split()[:124]
    return " ".join(a), " ".join(b)


def slide_text(fig) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(a.text) for a in fig.layout.annotations)


@pytest.fixture(scope="module")
def short_result(minilm):  # type: ignore[no-untyped-def]
    from attribution import explain

    return explain(minilm, *SHORT)


@pytest.fixture(scope="module")
def long_result(minilm):  # type: ignore[no-untyped-def]
    from attribution import explain

    return explain(minilm, *long_pair(), steps=8)


def test_a_short_pair_slide_holds_the_whole_map_texts_scores_legend_and_top_pairs(short_result) -> None:  # type: ignore[no-untyped-def]
    fig = build_slide([short_result], top_k=5)
    assert (fig.layout.width, fig.layout.height) == (1920, 1080)
    text = slide_text(fig)
    assert SHORT[0] in text and SHORT[1] in text
    assert "all-MiniLM-L6-v2" in text and f"{short_result.own_score:.3f}" in text
    assert "empty reference" in text and "the map explains" in text and "top pairs" in text
    assert "guitar – instrument" in text
    assert any(getattr(t, "colorbar", None) is not None and t.showscale for t in fig.data)  # the colour legend
    heat = next(t for t in fig.data if t.type == "heatmap")
    assert np.asarray(heat.z).shape == short_result.matrix.shape  # the whole map, no summary
    assert min(slide_label_sizes(fig)) >= MIN_LABEL_PX


def test_a_long_pair_slide_summarises_instead_of_shrinking_labels(long_result) -> None:  # type: ignore[no-untyped-def]
    assert max(long_result.shape) > 120
    fig = build_slide([long_result], top_k=5)
    assert (fig.layout.width, fig.layout.height) == (1920, 1080)
    assert min(slide_label_sizes(fig)) >= MIN_LABEL_PX
    text = slide_text(fig)
    assert "rows and" in text and "columns with the strongest pairs" in text  # says it is a summary
    assert "…" in text  # text B cut to its first lines, as text
    heat = next(t for t in fig.data if t.type == "heatmap")
    shown = np.asarray(heat.z)
    assert shown.size < long_result.matrix.size
    strongest = long_result.to_words().top_pairs(1)[0] if long_result.is_annotated else long_result.top_pairs(1)[0]
    assert np.isclose(np.nanmax(np.abs(shown)), abs(strongest.value))  # the strongest pair is on the slide


def test_the_combined_slide_shows_every_model_with_its_score(short_result) -> None:  # type: ignore[no-untyped-def]
    other = short_result.replace(model_name="second-model")
    fig = build_slide([short_result, other], top_k=3)
    assert (fig.layout.width, fig.layout.height) == (1920, 1080)
    text = slide_text(fig)
    assert text.count("the map explains") == 2 and "second-model" in text
    assert sum(t.type == "heatmap" for t in fig.data) == 2
    assert min(slide_label_sizes(fig)) >= MIN_LABEL_PX


def test_strongest_rows_and_columns_keeps_the_strongest_cell_and_the_sum(short_result) -> None:  # type: ignore[no-untyped-def]
    matrix = np.arange(11 * 9, dtype=float).reshape(11, 9) / 1000
    matrix[3, 1] = -2.0
    result = short_result.replace(matrix=matrix)
    cut = strongest_rows_and_columns(result, 2, 3)
    assert cut.shape == (2, 3) and -2.0 in cut.matrix
    assert cut.attribution_sum == result.attribution_sum
    assert cut.a.tokens == [result.a.tokens[3], result.a.tokens[10]]


def test_every_slide_export_renders_16_by_9(long_result) -> None:  # type: ignore[no-untyped-def]
    ok, note = exports.renderer_status()
    if not ok:
        pytest.skip(f"no server-side renderer: {note}")
    from PIL import Image

    png = exports.figure_image(build_slide([long_result], top_k=5), "png", scale=1)
    assert Image.open(io.BytesIO(png)).size == (1920, 1080)
    pdf = exports.figure_image(build_slide([long_result]), "pdf")
    assert pdf.startswith(b"%PDF")
    json.dumps(build_slide([long_result]).to_plotly_json(), default=str)  # serialisable as is
