"""The Rank page (pages/rank.py) through Streamlit's AppTest: typing a query and candidates, ranking with
one or two models, a candidate's map, the "why B over A?" contrast, the shared link, and bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from attribution import explain, rank_scores
from attribution.errors import InputError
from components import backend
from components import rank as rk

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "rank.py")
TIMEOUT = 300
QUERY = "How do cats spend the day?"
CANDIDATES = ["Dogs bark at the mailman.", "Cats sleep for most of the day.", "The stock market fell sharply."]


pytestmark = pytest.mark.usefixtures("_fresh_caches")  # conftest's: no result from an earlier test


def charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def decoded(values: Any) -> np.ndarray:
    """A plotly array as sent to the browser: a list, or {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(values, dict):
        flat = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
        shape = [int(n) for n in str(values.get("shape", len(flat))).split(",")]
        return flat.reshape(shape).astype(float)
    return np.asarray(values, dtype=float)


def button(at: AppTest, key: str) -> Any:
    return at.button(key=key)


def typed(query: str = QUERY, candidates: list[str] = CANDIDATES) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.text_area(key="rank_query").input(query)
    at.text_area(key="rank_candidates").input("\n".join(candidates))
    return button(at, "rank_go").click().run()


def table(at: AppTest, index: int = 0) -> Any:
    return at.dataframe[index].value


def test_typed_candidates_are_ranked_by_the_models_scores(minilm) -> None:  # type: ignore[no-untyped-def]
    at = typed()
    assert not at.exception and not at.error
    shown = table(at)
    expected = rank_scores(minilm, QUERY, CANDIDATES)
    assert list(shown["candidate"]) == [e.text for e in expected.entries]
    assert np.allclose(shown["score"], [round(e.score, 4) for e in expected.entries])
    assert not charts(at)  # scores first: no map is computed until asked for
    assert at.query_params["q"] == QUERY and at.query_params["c"] == CANDIDATES


def test_a_candidates_map_on_demand(minilm) -> None:  # type: ignore[no-untyped-def]
    at = typed()
    at.selectbox(key="rank_map_pick").select(CANDIDATES[1])
    at = button(at, "rank_map_go").click().run()
    assert not at.exception
    figures = charts(at)
    assert len(figures) == 1 and figures[0]["data"][0]["type"] == "heatmap"
    alone = explain(minilm, QUERY, CANDIDATES[1], role_a="query", role_b="document")
    z = decoded(figures[0]["data"][0]["z"])
    assert z.shape == alone.matrix.shape and np.nanmax(np.abs(z - alone.matrix)) <= 1e-6


def test_why_b_over_a_contrast_and_its_slide(minilm) -> None:  # type: ignore[no-untyped-def]
    at = typed()
    at.selectbox(key="rank_why_a").select(CANDIDATES[0])
    at.selectbox(key="rank_why_b").select(CANDIDATES[1])
    at = button(at, "rank_why_go").click().run()
    assert not at.exception
    (figure,) = charts(at)
    assert [bar["type"] for bar in figure["data"]] == ["bar", "bar"]
    assert "Why #1 outranks #" in figure["layout"]["title"]["text"]
    lists = [d.value for d in at.dataframe[1:]]
    assert any(len(frame) for frame in lists)  # query tokens that pulled one of them up
    assert any("Score gap" in c.value for c in at.caption)
    assert at.query_params["why"] == [CANDIDATES[1], CANDIDATES[0]]
    # the Export menu offers the slide and the numbers; the JSON holds the same contrast
    downloads = {d.proto.label for d in at.get("download_button")}
    assert "Contrast (JSON)" in downloads and "Interactive figure (HTML)" in downloads


def test_two_models_side_by_side(minilm, tiny_models, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from attribution.models import ModelInfo

    tiny = str(tiny_models["bert"])
    original = backend.available_models

    def with_tiny() -> list[ModelInfo]:
        return [*original(), ModelInfo(tiny, "builtin", True, "", "tiny test model")]

    monkeypatch.setattr(backend, "available_models", with_tiny)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["q"] = QUERY
    at.query_params["c"] = CANDIDATES
    at.query_params["m"] = ["all-MiniLM-L6-v2", tiny]
    at = at.run()
    assert not at.exception
    assert len(at.dataframe) == 2  # one ranked list per model, from the shared link alone


def test_shared_link_reopens_the_ranking_and_contrast(minilm) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["q"] = QUERY
    at.query_params["c"] = CANDIDATES
    at.query_params["why"] = [CANDIDATES[1], CANDIDATES[2]]
    at = at.run()
    assert not at.exception
    assert at.text_area(key="rank_query").value == QUERY
    assert table(at)["candidate"].iloc[0] == CANDIDATES[1]
    assert len(charts(at)) == 1  # the contrast the link named


@pytest.mark.parametrize(
    ("query", "candidates", "message"),
    [
        ("", CANDIDATES, "The query is empty"),
        (QUERY, [], "candidate list is empty"),
        (QUERY, ["a cat", "a cat"], "Candidates 0 and 1 are the same text"),
    ],
)
def test_bad_input_is_a_message(minilm, query: str, candidates: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    at = typed(query, candidates)
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert not at.dataframe


def test_uploaded_and_shared_helpers() -> None:
    assert rk.uploaded_candidates("c.json", json.dumps(CANDIDATES).encode()) == CANDIDATES
    assert rk.uploaded_candidates("c.csv", ("text\n" + "\n".join(CANDIDATES)).encode()) == CANDIDATES
    assert rk.uploaded_candidates("c.txt", "\n".join(CANDIDATES).encode("utf-8-sig")) == CANDIDATES
    with pytest.raises(InputError, match="not UTF-8"):
        rk.uploaded_candidates("c.txt", b"\xff\xfe\x00bad")
    many = [f"t{i}" for i in range(rk.MAX_URL_CANDIDATES + 1)]
    assert "c" not in rk.share_query(QUERY, many, ["m"])


def test_prompt_choice_changes_the_scores_as_sentence_transformers(
    minilm, minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """With an E5-style model, the default ranks with its query/document prompts (encode_query /
    encode_document); "No prompts" ranks the plain texts, and the link says so."""
    from sentence_transformers import SentenceTransformer
    from tiny_models import build_tiny_model

    from attribution.models import ModelInfo

    folder = str(build_tiny_model(tmp_path, "bert", minilm_dir, prompts={"query": "query: ", "document": "passage: "}))
    original = backend.available_models
    monkeypatch.setattr(backend, "available_models", lambda: [*original(), ModelInfo(folder, "builtin", True, "", "")])
    st_model = SentenceTransformer(folder, device="cpu", local_files_only=True)
    retrieval = st_model.similarity(st_model.encode_query([QUERY]), st_model.encode_document(CANDIDATES))[0].numpy()
    plain = st_model.similarity(st_model.encode([QUERY]), st_model.encode(CANDIDATES))[0].numpy()
    assert np.abs(retrieval - plain).max() > 1e-3  # the prompts matter for this model

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.query_params["q"] = QUERY
    at.query_params["c"] = CANDIDATES
    at.query_params["m"] = folder
    at = at.run()
    assert not at.exception
    shown = table(at).sort_values("candidate")
    wanted = dict(zip(CANDIDATES, retrieval, strict=True))
    assert np.allclose(shown["score"], [round(float(wanted[c]), 4) for c in shown["candidate"]], atol=2e-4)

    at.radio(key="rank_prompts").set_value("none")
    at = button(at, "rank_go").click().run()
    shown = table(at).sort_values("candidate")
    wanted = dict(zip(CANDIDATES, plain, strict=True))
    assert np.allclose(shown["score"], [round(float(wanted[c]), 4) for c in shown["candidate"]], atol=2e-4)
    assert at.query_params["prompts"] == "none"
