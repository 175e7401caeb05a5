"""Pure page builders on hand-built Attribution objects: figures, tables, exports, URL state."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import flat_attribution

from attribution.core.options import ExplainOptions
from attribution.errors import InputError
from attribution.models import ModelInfo
from attribution.result import Attribution, without_special_tokens
from attribution.settings import DEFAULT_MODEL, get_settings
from attribution.viz import exports
from attribution.viz.heatmap import (
    COLORBAR_TITLE,
    build_difference_map,
    build_heatmap,
    chart_config,
    figure_height,
    file_stem,
    pair_hash,
    plotly_escape,
    symmetric_limit,
    tick_labels,
)
from attribution.viz.tables import (
    difference_frame,
    error_is_high,
    matrix_frame,
    score_card_html,
    score_facts,
    top_pairs_frame,
    top_share_sentence,
)
from components.display import display_view
from components.state import (
    MAX_TOP,
    PageState,
    checked_layer,
    from_session,
    parse_query,
    to_query,
    to_session,
)


def make_result(
    tokens_a: list[str],
    tokens_b: list[str],
    matrix: np.ndarray | None = None,
    *,
    pos: bool = True,
    special_ends: bool = True,
    model: str = "toy-model",
    **changes: object,
) -> Attribution:
    """A token-level result; with special_ends the first and last tokens are [CLS]/[SEP]."""
    n_a, n_b = len(tokens_a), len(tokens_b)
    if matrix is None:
        rng = np.random.default_rng(n_a * 31 + n_b)
        matrix = rng.normal(0.0, 0.05, size=(n_a, n_b))
    total = float(np.sum(matrix))
    special_a = [special_ends and k in (0, n_a - 1) for k in range(n_a)]
    special_b = [special_ends and k in (0, n_b - 1) for k in range(n_b)]
    fields: dict[str, object] = dict(
        matrix=np.asarray(matrix, dtype=np.float64),
        tokens_a=tokens_a,
        tokens_b=tokens_b,
        text_a=" ".join(t for t, s in zip(tokens_a, special_a, strict=True) if not s),
        text_b=" ".join(t for t, s in zip(tokens_b, special_b, strict=True) if not s),
        score=0.5,
        target=total,
        attribution_sum=total,
        integration_error=0.0,
        relative_error=0.0,
        reference_terms=0.5 - total,
        layer=5,
        num_layers=6,
        steps=8,
        rule="gauss-legendre",
        mode="approximate",
        similarity="cos",
        model_name=model,
        seconds=0.25,
        tolerance=1e-3,
        special_a=special_a,
        special_b=special_b,
    )
    if pos:
        fields["pos_a"] = ["SPECIAL" if s else "NOUN" for s in special_a]
        fields["pos_b"] = ["SPECIAL" if s else "VERB" for s in special_b]
    fields.update(changes)
    return flat_attribution(**fields)


def word_result(
    words_a: list[str],
    words_b: list[str],
    index_a: list[int],
    index_b: list[int],
    matrix: np.ndarray,
    model: str,
) -> Attribution:
    """A word-level result whose rows/columns are spaCy words `index_a`/`index_b` of the texts."""
    return make_result(
        [words_a[w] for w in index_a],
        [words_b[w] for w in index_b],
        matrix,
        special_ends=False,
        level="word",
        text_a=" ".join(words_a),
        text_b=" ".join(words_b),
        word_index_a=index_a,
        word_index_b=index_b,
        words_a=words_a,
        words_b=words_b,
        model_name=model,
    )


def main_trace(fig: Any) -> Any:
    return fig.data[0]


# ----------------------------------------------------------------------------- heatmap


def test_heatmap_axes_are_index_based_so_repeated_tokens_stay_distinct() -> None:
    result = make_result(["[CLS]", "the", "cat", "saw", "the", "cat", "[SEP]"], ["[CLS]", "a", "cat", "[SEP]"])
    fig = build_heatmap(result)
    trace = main_trace(fig)
    assert np.asarray(trace.z).shape == (7, 4)
    assert list(fig.layout.yaxis.tickvals) == list(range(7))
    assert list(fig.layout.yaxis.ticktext).count("cat") == 2
    assert list(fig.layout.xaxis.tickvals) == list(range(4))
    assert tuple(fig.layout.yaxis.range) == (6.5, -0.5)  # first token of A on top


def test_heatmap_colour_scale_is_diverging_symmetric_and_titled() -> None:
    matrix = np.array([[0.1, -0.4], [0.2, 0.05]])
    fig = build_heatmap(make_result(["a", "b"], ["c", "d"], matrix, special_ends=False))
    trace = main_trace(fig)
    assert trace.zmid == 0.0
    assert trace.zmin == pytest.approx(-0.4) and trace.zmax == pytest.approx(0.4)
    assert trace.colorbar.title.text == COLORBAR_TITLE
    shared = build_heatmap(make_result(["a", "b"], ["c", "d"], matrix, special_ends=False), zmax=1.5)
    assert (main_trace(shared).zmin, main_trace(shared).zmax) == (-1.5, 1.5)


def test_symmetric_limit_ignores_nan_and_spans_matrices() -> None:
    assert symmetric_limit(np.array([[0.1, np.nan]]), np.array([[-0.3]])) == pytest.approx(0.3)
    assert symmetric_limit(np.zeros((2, 2))) > 0


def test_hover_names_both_tokens_value_share_and_pos() -> None:
    matrix = np.array([[0.3, 0.1], [0.4, 0.2]])
    result = make_result(["dog", "runs"], ["puppy", "plays"], matrix, special_ends=False)
    trace = main_trace(build_heatmap(result))
    template = trace.hovertemplate
    for piece in ("customdata[0]", "customdata[1]", "%{z", "share of the sum", "POS"):
        assert piece in template
    cell = trace.customdata[1][0]
    assert list(cell) == ["runs", "puppy", "+40.0 %", "NOUN", "VERB"]


def test_user_text_is_escaped_in_every_plotly_label() -> None:
    nasty_a = ["<b>bold</b>", "<a href='javascript:alert(1)'>x</a>"]
    nasty_b = ["<br>", "&amp;"]
    result = make_result(nasty_a, nasty_b, special_ends=False, model="<i>model<b>")
    fig = build_heatmap(result, top_k=2, pos_overlay=True)
    texts = [*fig.layout.yaxis.ticktext, *fig.layout.xaxis.ticktext, fig.layout.title.text]
    texts += [str(v) for row in main_trace(fig).customdata for cell in row for v in cell]
    joined = " ".join(texts)
    for raw in ("<b>bold", "<a href", "<br>", "<i>model"):
        assert raw not in joined
    assert "&lt;b&gt;bold&lt;/b&gt;" in fig.layout.yaxis.ticktext[0]
    assert "&amp;amp;" in fig.layout.xaxis.ticktext[1]
    assert "&lt;i&gt;model&lt;b&gt;" in fig.layout.title.text
    assert plotly_escape("'\"") == "'\""  # plotly shows &quot; literally; quotes need no escaping


def test_top_k_outlines_the_strongest_cells_with_ranks() -> None:
    matrix = np.array([[0.01, -0.9, 0.02], [0.5, 0.03, 0.04], [0.0, 0.2, -0.6]])
    result = make_result(["a", "b", "c"], ["d", "e", "f"], matrix, special_ends=False)
    fig = build_heatmap(result, top_k=3)
    outlined = {(int(s.y0 + 0.5), int(s.x0 + 0.5)) for s in fig.layout.shapes}
    assert outlined == {(0, 1), (2, 2), (1, 0)}
    assert [a.text for a in fig.layout.annotations if a.text.isdigit()] == ["1", "2", "3"]
    assert len(build_heatmap(result, top_k=0).layout.shapes) == 0
    assert len(build_heatmap(result, top_k=99).layout.shapes) == 9  # clamped to the cells


def test_pos_overlay_adds_strips_legend_and_pos_in_tick_labels() -> None:
    result = make_result(["[CLS]", "dog", "[SEP]"], ["[CLS]", "runs", "[SEP]"])
    plain = build_heatmap(result, totals=False)
    assert len(plain.data) == 1 and not plain.layout.showlegend
    fig = build_heatmap(result, pos_overlay=True)
    legend = sorted(t.name for t in fig.data if t.type == "scatter")
    assert legend == ["NOUN", "SPECIAL", "VERB"]
    strips = [t for t in fig.data if t.type == "heatmap" and t.name == "POS"]
    assert len(strips) == 2
    assert np.asarray(strips[0].z).shape == (3, 1) and np.asarray(strips[1].z).shape == (1, 3)
    assert "NOUN" in fig.layout.yaxis.ticktext[1] and "VERB" in fig.layout.xaxis.ticktext[1]
    assert fig.layout.showlegend


def test_pos_overlay_is_skipped_without_tags() -> None:
    fig = build_heatmap(make_result(["a", "b"], ["c"], pos=False, special_ends=False), pos_overlay=True, totals=False)
    assert len(fig.data) == 1
    assert tick_labels(["a"], None) == ["a"]


def test_figures_pass_plotly_validation() -> None:
    """The builders skip validation for speed; every property they set must still be valid."""
    import plotly.graph_objects as go

    result = make_result(["[CLS]", "dog", "[SEP]"], ["[CLS]", "runs", "[SEP]"])
    first = word_result(["a", "b"], ["c"], [0, 1], [0], np.array([[0.1], [0.2]]), "m1")
    second = word_result(["a", "b"], ["c"], [0, 1], [0], np.array([[0.3], [0.1]]), "m2")
    for fig in (build_heatmap(result, top_k=3, pos_overlay=True), build_difference_map(first, second)):
        validated = go.Figure(fig.to_dict())
        assert validated.to_plotly_json()["layout"]["title"]["text"] == fig.layout.title.text


def test_figure_height_grows_with_rows() -> None:
    heights = [figure_height(n) for n in (2, 10, 30, 80, 400)]
    assert heights == sorted(heights)
    assert heights[0] >= 150


def test_chart_config_exports_sharp_png_of_the_same_layout_named_after_the_pair() -> None:
    result = make_result(["a"], ["b"], special_ends=False, model="/models/my model")
    fig = build_heatmap(result)
    config = chart_config(fig, file_stem(result))
    options = config["toImageButtonOptions"]
    assert options["scale"] >= 3 and options["format"] == "png"
    assert (options["width"], options["height"]) == (fig.layout.width, fig.layout.height)  # the page's layout
    assert options["filename"] == file_stem(result) == f"pairlens_my-model_L5_token_{pair_hash('a', 'b')}"
    other = result.replace(b=result.b.replace(text="c"))
    assert file_stem(other) != file_stem(result)  # different pairs no longer collide
    assert pair_hash("a", "b") != pair_hash("b", "a") and len(pair_hash("a", "b")) == 8
    title = fig.layout.title.text
    assert "my model" in title and "layer 5 of 6" in title and "0.500" in title


# ----------------------------------------------------------------------------- difference map


def test_difference_map_aligns_words_across_tokenizers() -> None:
    words_a, words_b = ["dogs", "run"], ["puppies", "play", "outside"]
    first = word_result(words_a, words_b, [0, 1], [0, 1, 2], np.array([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1]]), "m1")
    # The second model truncated "outside" and lists its words in the same order.
    second = word_result(words_a, words_b, [0, 1], [0, 1], np.array([[0.2, 0.1], [0.2, 0.0]]), "m2")
    fig = build_difference_map(first, second, mode="raw")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (2, 3)
    np.testing.assert_allclose(z[:, :2], [[0.3, 0.0], [0.0, 0.3]], atol=1e-12)
    assert np.isnan(z[:, 2]).all()
    assert list(fig.layout.xaxis.ticktext) == ["puppies", "play", "outside"]
    assert fig.data[0].zmid == 0 and fig.data[0].zmin == -fig.data[0].zmax
    assert "m1" in fig.layout.title.text and "m2" in fig.layout.title.text


def test_difference_table_lists_the_largest_disagreements() -> None:
    words_a, words_b = ["dogs", "run"], ["puppies", "play", "outside"]
    first = word_result(words_a, words_b, [0, 1], [0, 1, 2], np.array([[0.5, 0.1, 0.0], [0.2, 0.3, 0.1]]), "m1")
    second = word_result(words_a, words_b, [0, 1], [0, 1], np.array([[0.2, 0.1], [0.25, 0.0]]), "m2")
    frame = difference_frame(first, second, k=2)
    assert list(frame.columns) == ["text A", "text B", "difference", "m1", "m2"]
    assert frame[["text A", "text B"]].values.tolist() == [["dogs", "puppies"], ["run", "play"]]
    assert frame["difference"].tolist() == pytest.approx([0.3, 0.3])
    assert len(difference_frame(first, second, k=99)) == 4  # the truncated column is left out


def test_difference_map_refuses_token_level_or_different_pairs() -> None:
    token = make_result(["a"], ["b"], special_ends=False)
    with pytest.raises(ValueError, match="word-level"):
        build_difference_map(token, token)
    first = word_result(["a"], ["b"], [0], [0], np.ones((1, 1)), "m1")
    other = first.replace(a=first.a.replace(text="something else"))
    with pytest.raises(ValueError, match="different text pairs"):
        build_difference_map(first, other)


# ----------------------------------------------------------------------------- display


def test_without_special_tokens_drops_rows_and_keeps_the_sum() -> None:
    result = make_result(["[CLS]", "a", "b", "[SEP]"], ["[CLS]", "c", "[SEP]"])
    view = without_special_tokens(result)
    assert view.a.tokens == ["a", "b"] and view.b.tokens == ["c"]
    assert view.a.pos == ["NOUN", "NOUN"]
    np.testing.assert_array_equal(view.matrix, result.matrix[1:3, 1:2])
    assert view.attribution_sum == result.attribution_sum
    assert display_view(result, "token", show_special=True) is result
    with pytest.raises(ValueError):
        display_view(result, "sentence")


def test_word_view_uses_the_library_grouping() -> None:
    result = make_result(
        ["[CLS]", "play", "##ing", "[SEP]"],
        ["[CLS]", "music", "[SEP]"],
        text_a="playing",
        text_b="music",
        word_index_a=[-1, 0, 0, -1],
        word_index_b=[-1, 0, -1],
        words_a=["playing"],
        words_b=["music"],
        word_pos_a=["VERB"],
        word_pos_b=["NOUN"],
        offsets_a=[(0, 0), (0, 4), (4, 7), (0, 0)],
        offsets_b=[(0, 0), (0, 5), (0, 0)],
    )
    view = display_view(result, "word", show_special=False)
    assert view.level == "word" and view.a.tokens == ["playing"]
    assert view.matrix[0, 0] == pytest.approx(result.matrix[1, 1] + result.matrix[2, 1])


# ----------------------------------------------------------------------------- tables


def test_top_pairs_table_and_sentence() -> None:
    matrix = np.array([[0.6, 0.1], [0.2, 0.1]])
    result = make_result(["x", "y"], ["u", "v"], matrix, special_ends=False)
    frame = top_pairs_frame(result, 2)
    assert list(frame["rank"]) == [1, 2]
    assert list(frame["text A"]) == ["x", "y"] and list(frame["text B"]) == ["u", "u"]
    assert frame["cumulative share"].iloc[-1] == pytest.approx(0.8)
    assert top_share_sentence(result, 2) == "the top 2 pairs carry 80.0 % of the attribution sum"
    assert top_share_sentence(result, 1) == "the top pair carries 60.0 % of the attribution sum"
    assert top_share_sentence(result, 0) == ""
    assert top_pairs_frame(result, 0).empty


def test_matrix_frame_labels_are_unique_for_repeated_tokens() -> None:
    frame = matrix_frame(make_result(["the", "the"], ["cat", "cat"], special_ends=False))
    assert list(frame.index) == ["0:the", "1:the"] and list(frame.columns) == ["0:cat", "1:cat"]


def test_score_panel_warns_above_tolerance() -> None:
    good = make_result(["a"], ["b"], special_ends=False)
    bad = good.replace(relative_error=5e-2, integration_error=0.01)
    assert not error_is_high(good) and error_is_high(bad)
    assert error_is_high(good.replace(converged=False))
    labels = [f.label for f in score_facts(good)]
    for label in ("attribution sum", "reference terms", "integration error", "layer", "steps", "compute time"):
        assert label in labels
    html = score_card_html(bad)
    assert "pl-warn" in html and "0.500" in html and "cosine similarity" in html and "the model's own" in html
    assert "pl-warn" not in score_card_html(good)



def test_score_panel_names_the_prompts_each_text_had() -> None:
    """No prompt: no line; one prompt for both texts: it once; per-text prompts: A's and B's ("none" for
    a text without one), as recorded in the result's run_options."""
    result = make_result(["a"], ["b"], special_ends=False)
    assert "prompts" not in [f.label for f in score_facts(result)]

    def prompts_line(**run_options: object) -> str:
        facts = {f.label: f.value for f in score_facts(result.replace(run_options=run_options))}
        return facts.get("prompts", "")

    assert prompts_line(prompt="", prompt_b=None) == ""
    assert prompts_line(prompt="query: ", prompt_b=None) == "'query: '"
    assert prompts_line(prompt="query: ", prompt_b="passage: ") == "A 'query: ' · B 'passage: '"
    assert prompts_line(prompt="Instruct: search\nQuery: ", prompt_b="") == "A 'Instruct: search\\nQuery: ' · B none"
    card = score_card_html(result.replace(run_options={"prompt": "", "prompt_b": "passage: "}))
    assert "A none · B &#x27;passage: &#x27;" in card  # escaped like every fact


# ----------------------------------------------------------------------------- exports


def test_csv_and_json_exports_round_trip() -> None:
    result = make_result(["[CLS]", "a", "[SEP]"], ["[CLS]", "b", "[SEP]"])
    frame = pd.read_csv(io.StringIO(exports.matrix_csv(result)), index_col=0)
    np.testing.assert_allclose(frame.to_numpy(), result.matrix, rtol=1e-7)
    back = Attribution.from_dict(json.loads(exports.result_json(result)))
    assert back == result  # every field, not only the matrix


def test_standalone_html_inlines_plotly() -> None:
    result = make_result(["a"], ["b"], special_ends=False)
    fig = build_heatmap(result)
    page = exports.figure_html(fig, chart_config(fig, file_stem(result)), exports.plain_title(fig))
    assert "<html>" in page[:200] and "toImageButtonOptions" in page
    assert "<title>toy-model · layer 5 of 6 · cosine 0.500</title>" in page[:300]
    assert len(page) > 1_000_000  # plotly.js is inlined: the file works offline


def test_server_side_image_export_when_a_renderer_exists() -> None:
    ok, note = exports.renderer_status()
    if not ok:
        assert "chromium" in note.lower()
        pytest.skip(f"no server-side renderer: {note}")
    result = make_result(["a", "b"], ["c"], special_ends=False)
    png = exports.figure_image(build_heatmap(result), "png", 640, 400, scale=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == 640 * 3


# ----------------------------------------------------------------------------- URL state


MODELS = [
    ModelInfo("all-MiniLM-L6-v2", "builtin", True, "", "minilm"),
    ModelInfo("all-mpnet-base-v2", "builtin", True, "", "mpnet"),
    ModelInfo("third", "builtin", True, "", "third"),
    ModelInfo("fourth", "builtin", True, "", "fourth"),
    ModelInfo("absent", "builtin", False, "pip install absent", "absent"),
]


def test_state_round_trips_through_the_query_string() -> None:
    state = PageState(
        text_a="Is <b> kept?",
        text_b="Yes & no",
        models=["all-mpnet-base-v2", "all-MiniLM-L6-v2"],
        layers={"all-mpnet-base-v2": 7, "all-MiniLM-L6-v2": None},
        options=ExplainOptions(steps=32, rule="midpoint", mode="exact", prompt="query: "),
        prompt_name_unused="passage",
        level="word",
        special=False,
        pos=True,
        shared=False,
        top=12,
        diff=(1, 0),
    )
    query = to_query(state)
    params = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    restored, notices = parse_query(params, MODELS)
    assert notices == []
    assert restored == state


def test_text_roles_round_trip_and_a_bad_roles_value_is_refused() -> None:
    state = PageState(
        options=ExplainOptions(role_a="document", role_b="query"),
        prompt_unused="search: ",
        layers={DEFAULT_MODEL: None},
    )
    query = to_query(state)
    assert (query["roles"], query["prompt"]) == ("document,query", "search: ")
    params = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    restored, notices = parse_query(params, MODELS)
    assert restored == state and restored.roles == "document,query"
    assert notices == ["roles= in the link: Text roles give each text the model's own query or document prompt: "
                       "the Prompt name and Prompt text are not used."]  # fmt: skip
    assert from_session(to_session(state)) == state
    refused, notices = parse_query({"roles": ["query,passage"], "prompt_name": ["query"]}, MODELS)
    assert refused.roles == "" and refused.options.prompt_name == "query"
    assert notices == ["roles= in the link: 'query,passage' is not one of 'query,document', 'document,query', "
                       "'query,query', 'document,document'; using one prompt for both texts."]  # fmt: skip


def test_invalid_query_values_are_refused_with_notices() -> None:
    """Option values are refused with the library's own messages (the default kept); the page's own values
    (level, pos, top, diff, models) are clamped or ignored with the page's notices."""
    params = {
        "model": ["nope", "absent", "all-minilm-l6-v2", "all-mpnet-base-v2", "third", "fourth"],
        "layer": ["1", "2", "-3", "x"],
        "steps": ["99999"],
        "rule": ["simpson"],
        "mode": ["fast"],
        "level": ["char"],
        "pos": ["maybe"],
        "top": ["500"],
        "diff": ["1,1"],
    }
    state, notices = parse_query(params, MODELS)
    assert state.models == ["all-MiniLM-L6-v2", "all-mpnet-base-v2", "third"]
    assert state.layers == {"all-MiniLM-L6-v2": None, "all-mpnet-base-v2": None}
    assert state.options == ExplainOptions()  # steps, rule and mode refused: the defaults
    assert state.level == "token" and state.pos is False and state.top == MAX_TOP and state.diff == (0, 1)
    text = "\n".join(notices)
    for needle in ("'nope'", "pip install absent", "At most 3", "simpson"):
        assert needle in text
    for key, value in (("steps", 99999), ("rule", "simpson"), ("mode", "fast")):  # core's own messages
        with pytest.raises(InputError) as refused:
            ExplainOptions.create(**{key: value if key != "steps" else str(value)})
        assert f"{key}= in the link: {refused.value}" in text
    for raw in ("-3", "x"):
        with pytest.raises(InputError) as refused:
            ExplainOptions.create(layer=raw)
        assert str(refused.value) in text
    assert len(notices) >= 11


def test_overlong_text_from_a_link_is_cut_with_a_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_MAX_TEXT_CHARS", "10")
    state, notices = parse_query({"a": ["x" * 25], "b": ["short"]}, MODELS)
    assert state.text_a == "x" * 10 and state.text_b == "short"
    assert notices == ["Text A from the link had 25 characters; cut to the limit of 10."]


def test_no_usable_model_falls_back_to_the_default() -> None:
    state, notices = parse_query({"model": ["nope"]}, MODELS)
    assert state.models == ["all-MiniLM-L6-v2"]
    assert any("showing all-MiniLM-L6-v2" in n for n in notices)


def test_steps_and_layers_are_checked_by_the_library() -> None:
    notices: list[str] = []
    assert from_session({"steps": "auto"}, notices).options.steps == "auto"
    assert from_session({"steps": " 16 "}, notices).options.steps == 16
    assert notices == []
    assert from_session({"steps": "0"}, notices).options.steps == "auto"  # refused, not clamped to 1
    assert from_session({"steps": "abc"}, notices).options.steps == "auto"
    assert notices == [
        "steps must be 'auto' or a whole number from 1 to 1024 (got '0'). Using auto.",
        "steps must be 'auto' or a whole number from 1 to 1024 (got 'abc'). Using auto.",
    ]
    assert checked_layer(None, 6, "m") == (None, None)
    assert checked_layer(4, 6, "m") == (4, None)
    layer, notice = checked_layer(40, 6, "m")  # refused as for_model refuses it: the default layer, not 6
    assert layer is None
    assert notice == "layer must be a whole number from 0 to 6 for m (got 40). Using the default layer."


def test_session_mapping_round_trip() -> None:
    state = PageState(models=["a", "b"], layers={"a": 3, "b": None}, top=7, diff=(1, 0))
    session = to_session(state)
    assert session["layer::a"] == 3 and session["layer::b"] == "default"
    assert from_session(session) == state
    assert math.isclose(from_session({}).top, PageState().top)


def test_the_operators_step_limit_refuses_with_cores_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under PAIRLENS_MAX_STEPS=100 a link's steps=500 is refused by ExplainOptions.check_limits (not clamped)."""
    monkeypatch.setenv("PAIRLENS_MAX_STEPS", "100")
    state, notices = parse_query({"steps": ["500"], "rule": ["midpoint"]}, MODELS)
    assert state.options == ExplainOptions(rule="midpoint")  # the other options are kept
    with pytest.raises(InputError) as refused:
        ExplainOptions(steps=500).check_limits(get_settings().limits)
    assert notices == [f"steps= in the link: {refused.value} Using auto."]
    assert "from 1 to 100" in notices[0]
