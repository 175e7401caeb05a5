"""Per-text prompts (issue 25): role_a / role_b pick the prompts sentence-transformers' encode_query /
encode_document pick, so the explained score is the model's own retrieval score; the attributions of
texts with different prompts match the per-dimension oracle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle import per_dimension_integrated_jacobian
from tiny_models import build_tiny_model

from attribution import ExplainOptions, InputError, explain, explain_many, load_model
from attribution.core.engine import prepare_path
from attribution.core.prompts import role_prompt_name
from attribution.core.quadrature import quadrature_nodes
from attribution.models import LoadedModel

QUERY = "what is the capital of France?"
DOC = "Paris is the capital and largest city of France."
RULE, STEPS, LAYER = "gauss-legendre", 2, 1

# prompts of several kinds, as retrieval models save them
PROMPT_KINDS: dict[str, dict[str, str]] = {
    "query-document": {"query": "search_query: ", "document": "search_document: "},
    "only-query": {"query": "Represent this question for searching passages: "},
    "e5": {"query": "query: ", "passage": "passage: "},
    "corpus": {"query": "q: ", "corpus": "c: "},
}


@pytest.fixture(scope="module")
def prompt_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("prompt-models")
    return {kind: build_tiny_model(base / kind, "bert", minilm_dir, prompts=p) for kind, p in PROMPT_KINDS.items()}


@pytest.fixture(scope="module")
def loaded() -> Any:
    cache: dict[Path, LoadedModel] = {}

    def get(folder: Path) -> LoadedModel:
        if folder not in cache:
            cache[folder] = load_model(str(folder))
        return cache[folder]

    return get


def st_retrieval_score(folder: Path, query_text: str, document_text: str, **per_side: Any) -> float:
    """sentence-transformers' own score of a query against a document (encode_query / encode_document)."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    q = st.encode_query([query_text], convert_to_tensor=True, **per_side.get("query", {}))
    d = st.encode_document([document_text], convert_to_tensor=True, **per_side.get("document", {}))
    return float(st.similarity(q, d)[0, 0])


@pytest.mark.parametrize("kind", list(PROMPT_KINDS))
def test_roles_give_the_models_own_retrieval_score(prompt_models: dict[str, Path], loaded: Any, kind: str) -> None:
    folder = prompt_models[kind]
    model = loaded(folder)
    res = explain(model, QUERY, DOC, layer=LAYER, steps=STEPS, rule=RULE, role_a="query", role_b="document", pos=False)
    assert res.score == pytest.approx(st_retrieval_score(folder, QUERY, DOC), abs=2e-5)
    # the query and the document got their own prompts (where the model has a non-empty one)
    query_prompt, document_prompt = ExplainOptions(role_a="query", role_b="document").side_prompts(model)
    assert query_prompt == PROMPT_KINDS[kind]["query"]
    assert any(res.a.prompt)
    assert any(res.b.prompt) == bool(document_prompt)
    # a symmetric prompt gives another score: the one a single prompt on both sides produces
    both = explain(model, QUERY, DOC, layer=LAYER, steps=STEPS, rule=RULE, prompt_name="query", pos=False)
    assert both.score != pytest.approx(res.score, abs=1e-6)


def test_document_role_falls_back_as_encode_document_does(prompt_models: dict[str, Path], loaded: Any) -> None:
    """encode_document takes the first of document / passage / corpus the model has; sentence-transformers
    gives every model an (empty) 'document' entry, so whatever it picks, PairLens picks the same."""
    for kind in PROMPT_KINDS:
        model = loaded(prompt_models[kind])
        assert role_prompt_name(model.prompts, "document") == "document"  # sentence-transformers' own entry
        assert role_prompt_name(model.prompts, "query") == "query"
    # a model known only by its saved prompts (no sentence-transformers defaults)
    assert role_prompt_name({"query": "q: ", "passage": "p: ", "corpus": "c: "}, "document") == "passage"
    assert role_prompt_name({"corpus": "c: "}, "document") == "corpus"
    assert role_prompt_name({"corpus": "c: "}, "query") is None  # plain encode's rule: the default prompt


def test_per_side_names_and_texts_equal_roles(prompt_models: dict[str, Path], loaded: Any) -> None:
    folder = prompt_models["e5"]
    model = loaded(folder)
    by_text = explain(model, QUERY, DOC, layer=LAYER, steps=STEPS, rule=RULE, prompt_a="query: ", prompt_b="passage: ",
                      pos=False)  # fmt: skip
    by_name = explain(model, QUERY, DOC, layer=LAYER, steps=STEPS, rule=RULE, prompt_name_a="query",
                      prompt_name_b="passage", pos=False)  # fmt: skip
    np.testing.assert_allclose(by_text.matrix, by_name.matrix, rtol=0, atol=1e-9)
    expected = st_retrieval_score(folder, QUERY, DOC, document={"prompt_name": "passage"})
    assert by_name.score == pytest.approx(expected, abs=2e-5)


def test_prompts_left_out_of_pooling_match_the_oracle(tiny_models: Mapping[str, Path], loaded: Any) -> None:
    """nomic_bert's Pooling leaves the prompt out: A and B pool with different prompt lengths, each side's
    tail must be its own (the per-dimension oracle runs each side's own prompted model)."""
    folder = tiny_models["nomic_bert"]
    model = loaded(folder)
    res = explain(model, QUERY, DOC, layer=LAYER, steps=STEPS, rule=RULE, role_a="query", role_b="document", pos=False)
    assert res.score == pytest.approx(st_retrieval_score(folder, QUERY, DOC), abs=2e-5)
    nodes, weights = quadrature_nodes(RULE, STEPS)
    es, embs = [], []
    for text, role in ((QUERY, "query"), (DOC, "document")):
        side = model.prompted(role)
        path = prepare_path(side, text, LAYER, "")
        es.append(per_dimension_integrated_jacobian(side.tail(LAYER), path.h, path.r, nodes, weights))
        embs.append(path.f)
    oracle = ((es[0].T @ es[1]) / (embs[0].norm() * embs[1].norm())).double().numpy()
    assert np.abs(res.matrix - oracle).max() <= 1e-5 * np.abs(oracle).max()
    # explain_many gives the same result with per-side prompts
    (many,) = explain_many(model, [(QUERY, DOC)], layer=LAYER, steps=STEPS, rule=RULE, role_a="query",
                           role_b="document")  # fmt: skip
    np.testing.assert_allclose(many.matrix, res.matrix, rtol=0, atol=1e-7)


def test_resolved_options_name_the_prompts(prompt_models: dict[str, Path], loaded: Any) -> None:
    model = loaded(prompt_models["query-document"])
    resolved = ExplainOptions(role_a="query", role_b="document").for_model(model)
    assert (resolved.prompt_name, resolved.prompt_name_b) == ("query", "document")
    assert resolved.side_prompts == ("search_query: ", "search_document: ")
    assert resolved.result_fields()["prompt_b"] == "search_document: "  # in the cache key
    symmetric = ExplainOptions(prompt_name="query").for_model(model)
    assert symmetric.side_prompts == ("search_query: ", "search_query: ")
    assert "prompt_b" not in symmetric.result_fields()  # one prompt for both: the key as before


def test_unknown_prompt_names_and_mixed_prompts_are_refused(prompt_models: dict[str, Path], loaded: Any) -> None:
    model = loaded(prompt_models["e5"])
    with pytest.raises(InputError, match=r"no prompt named 'title'.*'query'.*'passage'"):
        explain(model, QUERY, DOC, prompt_name_b="title")
    with pytest.raises(InputError, match="either for both texts"):
        ExplainOptions(prompt_name="query", role_b="document")
    with pytest.raises(InputError, match="for text A, not several"):
        ExplainOptions(role_a="query", prompt_a="query: ")
    with pytest.raises(InputError, match="role_b must be 'query' or 'document'"):
        ExplainOptions.create(role_b="passage")


def test_cli_arguments_carry_per_side_prompts() -> None:
    import argparse

    from attribution.core.options import add_explain_options, options_from_args

    parser = argparse.ArgumentParser()
    add_explain_options(parser)
    options = options_from_args(parser.parse_args(["--role-a", "query", "--prompt-b", "passage: "]))
    assert (options.role_a, options.prompt_b, options.per_side) == ("query", "passage: ", True)
