"""explain_ranking (issue 25): the model's own order, each map equal to explain()'s for the pair (the
query's slices shared), maps against the per-dimension oracle, contrasts, and refusals before any work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from oracle import per_dimension_integrated_jacobian
from tiny_models import build_tiny_model

import attribution.ranking as ranking_module
from attribution import InputError, Ranking, explain, explain_ranking, load_model, rank_scores
from attribution.core.engine import prepare_path
from attribution.core.quadrature import quadrature_nodes

QUERY = "How do cats spend the day?"
CANDIDATES = [
    "Dogs bark at the mailman.",
    "Cats sleep for most of the day.",
    "A cat naps in the sun all afternoon.",
    "The stock market fell sharply.",
    "Kittens play with yarn.",
]


def max_difference(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(np.asarray(x) - np.asarray(y)).max())


def test_ranking_orders_by_the_models_own_score_and_equals_explain(minilm) -> None:  # type: ignore[no-untyped-def]
    """Default layer, steps=auto: every map equals a separate explain() of the pair within 1e-6."""
    ranking = explain_ranking(minilm, QUERY, CANDIDATES, pos=False)
    assert [e.rank for e in ranking.entries] == [1, 2, 3, 4, 5]
    scores = [e.score for e in ranking.entries]
    assert scores == sorted(scores, reverse=True)
    assert sorted(e.index for e in ranking.entries) == list(range(len(CANDIDATES)))
    embeddings = minilm.embed([QUERY, *CANDIDATES])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    for entry in ranking.entries:
        assert entry.text == CANDIDATES[entry.index]
        assert entry.score == pytest.approx(float(unit[0] @ unit[1 + entry.index]), abs=1e-6)
        alone = explain(minilm, QUERY, entry.text, role_a="query", role_b="document", pos=False)
        assert entry.attribution is not None
        assert entry.attribution.matrix.shape == alone.matrix.shape
        assert max_difference(entry.attribution.matrix, alone.matrix) <= 1e-6
        assert entry.attribution.steps == alone.steps
        assert entry.score == pytest.approx(alone.own_score, abs=1e-6)
    # the relevant candidates come first
    assert {ranking.entries[0].index, ranking.entries[1].index} == {1, 2}


def test_ranking_maps_match_the_per_dimension_oracle(minilm) -> None:  # type: ignore[no-untyped-def]
    layer, rule, steps = 3, "gauss-legendre", 4
    ranking = explain_ranking(minilm, QUERY, CANDIDATES[:3], layer=layer, rule=rule, steps=steps, pos=False)
    nodes, weights = quadrature_nodes(rule, steps)
    tail = minilm.tail(layer)
    query = prepare_path(minilm, QUERY, layer, "")
    e_query = per_dimension_integrated_jacobian(tail, query.h, query.r, nodes, weights)
    for entry in ranking.entries:
        path = prepare_path(minilm, entry.text, layer, "")
        e_cand = per_dimension_integrated_jacobian(tail, path.h, path.r, nodes, weights)
        oracle = ((e_query.T @ e_cand) / (query.f.norm() * path.f.norm())).double().numpy()
        assert entry.attribution is not None
        assert max_difference(entry.attribution.matrix, oracle) <= 1e-5 * np.abs(oracle).max()


def test_adaptive_meshes_per_pair_stay_exact_when_the_query_is_shared(
    minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a strongly nonlinear tiny model (weights x40) the adaptive rule refines each pair's meshes in its own
    way (the query's mesh depends on the candidate): the shared slices must not change any pair's mesh or map."""
    monkeypatch.setitem(tiny_models.SPECS, "bert", dataclasses.replace(tiny_models.SPECS["bert"], weight_scale=40.0))
    model = load_model(str(build_tiny_model(tmp_path, "bert", minilm_dir)))
    options = {"layer": 1, "tolerance": 1e-5, "pos": False}
    ranking = explain_ranking(model, QUERY, CANDIDATES[:3], **options)
    histories = set()
    for entry in ranking.entries:
        alone = explain(model, QUERY, entry.text, role_a="query", role_b="document", **options)
        assert entry.attribution is not None
        assert max_difference(entry.attribution.matrix, alone.matrix) <= 1e-6
        assert [n for n, _ in entry.attribution.error_by_steps] == [n for n, _ in alone.error_by_steps]
        histories.add(tuple(n for n, _ in alone.error_by_steps))
    assert len(histories) > 1 and max(max(h) for h in histories) > 8, "each pair refined in its own way"


def test_query_slices_are_computed_once(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every node slice of the query is computed in one place, whatever the number of candidates."""
    seen: list[tuple[int, int]] = []
    original = ranking_module._SharedQueryEvaluator.evaluate

    def counting(self, path, nodes):  # type: ignore[no-untyped-def]
        before = set(self.store) if self._is_query(path) else None
        original(self, path, nodes)
        if before is not None:
            seen.append((len(before), len(set(self.store) - before)))

    monkeypatch.setattr(ranking_module._SharedQueryEvaluator, "evaluate", counting)
    explain_ranking(minilm, QUERY, CANDIDATES, pos=False, steps=6, rule="gauss-legendre")
    assert seen and all(new == 0 for _, new in seen)  # the first round computed them; no pair added any


def test_contrast_says_which_query_tokens_pulled_each_candidate_up(minilm) -> None:  # type: ignore[no-untyped-def]
    ranking = explain_ranking(minilm, QUERY, CANDIDATES[:3])
    contrast = ranking.contrast(2, 0)  # either order: the higher-ranked candidate comes first
    assert contrast.higher.rank == 1 and contrast.lower.rank == 3
    assert contrast.query_tokens == ranking.entries[0].attribution.a.tokens  # type: ignore[union-attr]
    assert contrast.attribution_gap == pytest.approx(float(contrast.query_difference.sum()), abs=1e-9)
    assert contrast.score_gap == pytest.approx(contrast.higher.score - contrast.lower.score)
    assert contrast.score_gap > 0
    up, down = contrast.pulled_up(k=3)
    assert up and all(d > 0 for _, d in up) and all(d < 0 for _, d in down)
    assert all(token not in ("[CLS]", "[SEP]") for token, _ in up + down)
    words = [w for w, _, _ in contrast.words_higher]
    assert "sleep" in words or "naps" in words
    assert all(best in contrast.query_tokens for _, _, best in contrast.words_higher)
    json.dumps(contrast.to_dict())


def test_ranking_round_trips_through_json(minilm) -> None:  # type: ignore[no-untyped-def]
    ranking = explain_ranking(minilm, QUERY, CANDIDATES[:3], top=2, pos=False)
    assert [e.attribution is not None for e in ranking.entries] == [True, True, False]
    again = Ranking.from_dict(json.loads(json.dumps(ranking.to_dict())))
    assert [e.text for e in again.entries] == [e.text for e in ranking.entries]
    assert max_difference(again.entries[0].attribution.matrix, ranking.entries[0].attribution.matrix) == 0  # type: ignore[union-attr]
    with pytest.raises(InputError, match="has no map"):
        ranking.contrast(0, 2)


def test_scores_only_ranking_matches_the_maps(minilm) -> None:  # type: ignore[no-untyped-def]
    scored = rank_scores(minilm, QUERY, CANDIDATES)
    explained = explain_ranking(minilm, QUERY, CANDIDATES, top=1, pos=False)
    assert [e.index for e in scored.entries] == [e.index for e in explained.entries]
    assert all(e.attribution is None for e in scored.entries)
    for a, b in zip(scored.entries, explained.entries, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_retrieval_prompts_give_sentence_transformers_order(minilm_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = build_tiny_model(tmp_path, "bert", minilm_dir, prompts={"query": "query: ", "passage": "passage: "})
    model = load_model(str(folder))
    ranking = explain_ranking(model, QUERY, CANDIDATES, layer=1, steps=2, pos=False)
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    theirs = st.similarity(st.encode_query([QUERY]), st.encode_document(CANDIDATES))[0].numpy()
    assert [e.index for e in ranking.entries] == list(np.argsort(-theirs, kind="stable"))
    for entry in ranking.entries:
        assert entry.score == pytest.approx(float(theirs[entry.index]), abs=2e-5)
    assert ranking.query_prompt == "query: "
    # a symmetric prompt is honoured as given
    both = rank_scores(model, QUERY, CANDIDATES, prompt_name="query")
    assert both.document_prompt == "query: "


def test_truncated_candidates_are_flagged(minilm) -> None:  # type: ignore[no-untyped-def]
    long = "cats " * (minilm.max_tokens + 20)
    ranking = rank_scores(minilm, QUERY, [CANDIDATES[0], long])
    flagged = ranking.by_index(1)
    assert flagged.truncated and not ranking.by_index(0).truncated
    assert any("candidate 1" in w and "truncated" in w for w in ranking.warnings)


def test_bad_input_is_refused_before_anything_is_computed(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    def no_work(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("computed before refusing")

    monkeypatch.setattr(ranking_module, "_scores", no_work)
    monkeypatch.setattr(ranking_module, "_explain_chosen", no_work)
    cases = [
        (("", CANDIDATES), "The query is empty"),
        ((QUERY, []), "candidate list is empty"),
        ((QUERY, "one text"), "must be a list of texts"),
        ((QUERY, ["a cat", "  "]), "Candidate 1 is empty"),
        ((QUERY, ["a cat", "dogs", "a  cat"]), "Candidates 0 and 2 are the same text"),
        ((QUERY, [f"text {i}" for i in range(ranking_module.MAX_RANKED + 1)]), "more than the 1,000 one ranking takes"),
    ]
    for (query, candidates), message in cases:
        with pytest.raises(InputError, match=message):
            explain_ranking(minilm, query, candidates)
    with pytest.raises(InputError, match=r"no prompt named 'search'.*its prompts: 'query', 'document'"):
        explain_ranking(minilm, QUERY, CANDIDATES, prompt_name_a="search")
    with pytest.raises(InputError, match="more than the 100 maps"):
        explain_ranking(minilm, QUERY, [f"text {i}" for i in range(101)])
    with pytest.raises(InputError, match="top must be a whole number"):
        explain_ranking(minilm, QUERY, CANDIDATES, top=-1)
