"""The result record: TextSide per text, its versioned JSON schema, lossless round trips."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.result import SCHEMA_VERSION, Attribution, TextSide, json_schema
from attribution.viz.tables import error_is_high

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
short_text = st.text(max_size=12)
spans = st.tuples(st.integers(0, 99), st.integers(0, 9))
upos = st.sampled_from(["NOUN", "VERB", "ADJ", "SPECIAL", "PUNCT"])


@st.composite
def text_sides(draw: st.DrawFn, n: int) -> TextSide:
    annotated = draw(st.booleans())
    tagged = annotated and draw(st.booleans())
    n_words = draw(st.integers(0, 4))
    return TextSide(
        text=draw(short_text),
        tokens=draw(st.lists(short_text, min_size=n, max_size=n)),
        offsets=[(s, s + w) for s, w in draw(st.lists(spans, min_size=n, max_size=n))],
        special=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        truncated=draw(st.booleans()),
        pos=draw(st.lists(upos, min_size=n, max_size=n)) if tagged else None,
        tags=draw(st.lists(short_text, min_size=n, max_size=n)) if tagged else None,
        word_index=draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)) if annotated else None,
        words=draw(st.lists(short_text, min_size=n_words, max_size=n_words)) if annotated else None,
        word_pos=draw(st.lists(upos, min_size=n_words, max_size=n_words)) if tagged else None,
        prompt=draw(st.one_of(st.just([]), st.lists(st.booleans(), min_size=n, max_size=n))),
    )  # fmt: skip


@st.composite
def attributions(draw: st.DrawFn) -> Attribution:
    n_a, n_b = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    cells = draw(st.lists(st.one_of(finite, st.just(math.nan)), min_size=n_a * n_b, max_size=n_a * n_b))
    return Attribution(
        matrix=np.array(cells, dtype=np.float64).reshape(n_a, n_b),
        a=draw(text_sides(n_a)),
        b=draw(text_sides(n_b)),
        score=draw(floats),
        target=draw(floats),
        attribution_sum=draw(floats),
        integration_error=draw(floats),
        relative_error=draw(floats),
        reference_terms=draw(floats),
        layer=draw(st.integers(0, 48)),
        num_layers=draw(st.integers(1, 48)),
        steps=draw(st.integers(1, 1024)),
        rule=draw(st.sampled_from(["gauss-legendre", "midpoint", "riemann-right"])),
        mode=draw(st.sampled_from(["approximate", "exact"])),
        similarity=draw(st.sampled_from(["cos", "dot"])),
        model_name=draw(short_text),
        seconds=draw(floats),
        tolerance=draw(st.one_of(st.none(), floats)),
        converged=draw(st.booleans()),
        error_by_steps=draw(st.lists(st.tuples(st.integers(1, 1024), floats), max_size=4)),
        level=draw(st.sampled_from(["token", "word"])),
        warnings=draw(st.lists(short_text, max_size=3)),
        pos_note=draw(st.one_of(st.none(), short_text)),
        special_share=draw(st.one_of(st.none(), floats)),
        model_score=draw(st.one_of(st.none(), floats)),
        exact_model=draw(st.one_of(st.none(), st.booleans())),
        error_bound=draw(st.one_of(st.none(), floats)),
        step_cap=draw(st.one_of(st.none(), st.integers(1, 1024))),
    )


def _json_round_trip(result: Attribution) -> Attribution:
    text = json.dumps(result.to_dict(), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    return Attribution.from_dict(json.loads(text))


@settings(max_examples=300, deadline=None)
@given(attributions())
def test_every_field_survives_the_json_round_trip(result: Attribution) -> None:
    """from_dict(to_dict(r)) == r, field by field: None stays None, NaN NaN, infinities infinities."""
    again = _json_round_trip(result)
    assert again == result
    for name in ("tolerance", "special_share", "pos_note", "model_score", "exact_model"):
        assert (getattr(again, name) is None) == (getattr(result, name) is None), name


@settings(max_examples=100, deadline=None)
@given(attributions())
def test_to_dict_follows_the_published_schema(result: Attribution) -> None:
    jsonschema.validate(result.to_dict(), json_schema())


def test_a_none_tolerance_does_not_turn_into_nan_and_hide_a_high_error() -> None:
    """The schema-1 bug: None tolerance became NaN after a round trip, so a 50 % error looked fine."""
    result = Attribution(
        matrix=np.ones((1, 1)), a=TextSide("x", ["x"]), b=TextSide("y", ["y"]), score=1.0, target=2.0,
        attribution_sum=1.0, integration_error=-1.0, relative_error=0.5, reference_terms=-1.0, layer=1,
        num_layers=2, steps=8, rule="gauss-legendre", mode="approximate", similarity="cos", model_name="m",
        seconds=0.1, tolerance=None, special_share=None,
    )  # fmt: skip
    again = _json_round_trip(result)
    assert again.tolerance is None and again.special_share is None
    assert error_is_high(result) and error_is_high(again)


def test_schema_1_files_still_read() -> None:
    """A corpus record written before TextSide existed (schema 1, nulls for absent and non-finite)."""
    old: dict[str, Any] = {
        "schema": 1, "matrix": [[0.5, None]], "tokens_a": ["[CLS]"], "tokens_b": ["a", "b"], "text_a": "",
        "text_b": "a b", "score": 0.4, "target": 0.5, "attribution_sum": 0.5, "integration_error": 0.0,
        "relative_error": 0.0, "reference_terms": -0.1, "layer": 5, "num_layers": 6, "steps": 8,
        "rule": "gauss-legendre", "mode": "approximate", "similarity": "cos", "model_name": "all-MiniLM-L6-v2",
        "seconds": 0.2, "tolerance": None, "converged": True, "error_by_steps": [[8, None]], "truncated_a": False,
        "truncated_b": True, "special_a": [True], "special_b": [False, False], "offsets_a": [[0, 0]],
        "offsets_b": [[0, 1], [2, 3]], "level": "token", "warnings": [], "pos_a": None, "pos_b": None,
        "tag_a": None, "tag_b": None, "word_index_a": None, "word_index_b": None, "words_a": None,
        "words_b": None, "word_pos_a": None, "word_pos_b": None, "pos_note": None, "special_share": None,
        "model": "all-MiniLM-L6-v2",
    }  # fmt: skip
    result = Attribution.from_dict(old)
    assert result.tolerance is None and result.special_share is None and math.isnan(result.matrix[0, 1])
    assert result.b.truncated and result.b.offsets == [(0, 1), (2, 3)] and result.a.special == [True]
    assert math.isnan(result.error_by_steps[0][1])
    assert result.to_dict()["schema"] == SCHEMA_VERSION == 2
    assert result.a.prompt == [] and result.to_dict()["prompt_b"] == []  # added within schema 2: empty when absent


def test_unknown_schema_versions_are_refused_with_a_remedy() -> None:
    with pytest.raises(ValueError, match="upgrade PairLens"):
        Attribution.from_dict({"schema": 99})


def test_json_keys_stay_the_cli_contract(minilm: Any) -> None:
    """Flat keys as before (additions allowed): scripts that read `explain --json` keep working."""
    from attribution import explain

    keys = set(explain(minilm, "A cat.", "A dog.", steps=2).to_dict())
    contract = {
        "model", "layer", "steps", "rule", "mode", "similarity", "tokens_a", "tokens_b", "matrix", "score",
        "target", "attribution_sum", "integration_error", "reference_terms", "seconds", "pos_a", "pos_b",
        "tag_a", "tag_b", "words_a", "words_b", "word_index_a", "word_index_b", "offsets_a", "special_b",
    }  # fmt: skip
    assert contract <= keys


def test_exact_mode_keeps_the_models_own_score_beside_the_explained_one(minilm: Any) -> None:
    """Exact mode on an off-the-shelf model explains the shifted embeddings' cosine, not the model's."""
    from attribution import explain

    pair = ("A man is playing a guitar on stage.", "Someone performs music with an instrument.")
    plain = explain(minilm, *pair, steps=2, pos=False)
    exact = explain(minilm, *pair, steps=2, mode="exact", pos=False)
    own = float(minilm.embed([pair[0]])[0] @ minilm.embed([pair[1]])[0])
    own /= float(np.linalg.norm(minilm.embed([pair[0]])[0]) * np.linalg.norm(minilm.embed([pair[1]])[0]))
    assert plain.model_score == pytest.approx(plain.score) == pytest.approx(own, abs=1e-5)
    assert exact.model_score == pytest.approx(own, abs=1e-5) and exact.own_score == exact.model_score
    assert abs(exact.score - exact.own_score) > 0.05  # the explained number is another one
    assert exact.exact_model is False and exact.explains_other_score and not plain.explains_other_score
    old = exact.to_dict()
    del old["model_score"], old["exact_model"]  # a file written before these keys existed
    again = Attribution.from_dict(old)
    assert again.model_score is None and again.own_score == again.score and not again.explains_other_score
