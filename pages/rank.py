"""Rank page: one query against many candidates, the model's ranking first, then why.

Scores come from the embeddings alone (attribution.ranking.rank_scores: encoder forwards only), so
the ranked list shows before any map; a candidate's map and the "why B over A?" contrast are computed
on demand through the page's backend (the query with the model's query prompt, candidates with its
document prompt). Several models side by side rank the same candidates. The URL carries the query,
candidates, models and the contrasted pair (read once when the page opens). Wiring only: the pieces are
components.rank, the maths attribution.ranking. A page of app.py's navigation; also runs on its own.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from attribution.errors import PairLensError
from attribution.ranking import Ranking, rank_scores
from attribution.result import Attribution
from attribution.settings import DEFAULT_MODEL
from attribution.viz.contrast import build_contrast_figure
from attribution.viz.heatmap import build_heatmap, chart_config, file_stem, short_model_name
from components import backend, render
from components import rank as rk
from components.state import literal_markdown, share_url


def read_url_once() -> None:
    """Fill the inputs from a shared link, once per session (later edits are the user's)."""
    if st.session_state.get("rank_url_read"):
        return
    st.session_state["rank_url_read"] = True
    wanted = rk.url_state(render.read_query())
    if wanted["query"]:
        st.session_state["rank_query"] = wanted["query"]
    if wanted["candidates"]:
        st.session_state["rank_candidates"] = "\n".join(wanted["candidates"])  # type: ignore[arg-type]
    if wanted["prompts"] in rk.PROMPT_CHOICES:
        st.session_state["rank_prompts"] = wanted["prompts"]
    if wanted["models"]:
        st.session_state["rank_models_wanted"] = wanted["models"]
    if wanted["query"] and wanted["candidates"]:
        st.session_state["rank_auto"] = True  # a shared ranking opens ranked
    if len(wanted["why"]) == 2:  # type: ignore[arg-type]
        st.session_state["rank_pair"] = tuple(wanted["why"])  # type: ignore[arg-type]


def inputs(installed: list[str]) -> tuple[str, list[str], list[str], bool]:
    """Query, candidates (typed or uploaded), models, and whether Rank was pressed."""
    query = st.text_area("Query", key="rank_query", height=68, placeholder="What the user searched for")
    typed = st.text_area(
        "Candidates, one per line", key="rank_candidates", height=180, placeholder="Paste or type the passages"
    )
    upload = st.file_uploader(
        "…or upload them (JSON list, CSV/TSV with a 'text' column, or a text file with one per line)",
        type=rk.UPLOAD_TYPES,
        key="rank_upload",
    )
    candidates = rk.typed_candidates(typed)
    if upload is not None:
        try:
            candidates = rk.uploaded_candidates(upload.name, upload.getvalue())
        except PairLensError as exc:
            st.error(literal_markdown(str(exc)))
            candidates = []
    wanted = st.session_state.pop("rank_models_wanted", None)
    if wanted is not None:
        st.session_state["rank_models"] = [m for m in wanted if m in installed] or installed[:1]
    default = [DEFAULT_MODEL] if DEFAULT_MODEL in installed else installed[:1]
    models = st.multiselect("Models (side by side)", installed, default=default, key="rank_models")
    st.radio(
        "Prompts",
        list(rk.PROMPT_CHOICES),
        format_func=lambda k: rk.PROMPT_CHOICES[k][0],
        key="rank_prompts",
        horizontal=True,
        help="Retrieval models encode queries and documents with different prompts (E5's 'query: ' and "
        "'passage: ', ...); the scores and maps are those of the model with these prompts.",
    )
    pressed = st.button("Rank", type="primary", key="rank_go", icon=":material/sort:")
    return query, candidates, models, pressed


def rank_all(query: str, candidates: list[str], models: list[str]) -> None:
    """Scores-only rankings for every model into the session (nothing half: the first refusal stops all)."""
    prompts = st.session_state.get("rank_prompts", "retrieval")
    options = rk.options_for(prompts)
    rankings: dict[str, Ranking] = {}
    try:
        for name in models:
            rankings[name] = rank_scores(backend.get_model(name), query, candidates, options)
    except PairLensError as exc:
        st.session_state.pop("rank_results", None)
        st.session_state["rank_error"] = str(exc)
        return
    st.session_state.pop("rank_error", None)
    st.session_state["rank_results"] = {
        "query": query, "candidates": candidates, "rankings": rankings, "prompts": prompts,
    }  # fmt: skip
    st.session_state.pop("rank_map_for", None)


def map_of(name: str, query: str, candidate: str, prompts: str) -> Attribution | None:
    """The candidate's map against the query by `name` (the page's backend), None with a message if refused."""
    slot = st.empty()

    def show(computation: backend.Computation) -> None:
        fraction, text = backend.progress_text(name, computation.status)
        render.render_progress(slot, fraction, text)

    outcome = backend.explain_cached(name, query, candidate, rk.options_for(prompts), show)
    slot.empty()
    if isinstance(outcome, backend.Failure):
        render.render_failure(short_model_name(name), outcome.message)
        return None
    return outcome


def show_rankings(results: dict[str, Any]) -> None:
    rankings: dict[str, Ranking] = results["rankings"]
    query: str = results["query"]
    texts = results["candidates"]
    columns = st.columns(len(rankings))
    for column, (name, ranking) in zip(columns, rankings.items(), strict=True):
        with column:
            st.subheader(short_model_name(name))
            st.dataframe(rk.ranked_table(ranking), hide_index=True, key=f"rank-table-{name}")
            for note in ranking.warnings:
                st.caption(literal_markdown(note))

    st.markdown("#### A candidate's map")
    left, right = st.columns([4, 1])
    pick = left.selectbox("Candidate", texts, key="rank_map_pick", label_visibility="collapsed")
    if right.button("Show its map", key="rank_map_go", icon=":material/grid_on:"):
        st.session_state["rank_map_for"] = pick
    chosen = st.session_state.get("rank_map_for")
    if isinstance(chosen, str) and chosen in texts:
        for column, (name, ranking) in zip(st.columns(len(rankings)), rankings.items(), strict=True):
            with column:
                result = map_of(name, query, chosen, results["prompts"])
                if result is not None:
                    entry = next(e for e in ranking.entries if e.text == chosen)
                    st.caption(f"#{entry.rank} by {short_model_name(name)}, score {entry.score:+.4f}")
                    fig = build_heatmap(result, top_k=3)
                    render.render_heatmap(fig, chart_config(fig, file_stem(result)), key=f"rank-map-{name}")

    st.markdown("#### Why B over A?")
    a_col, b_col, go_col = st.columns([2, 2, 1])
    first = a_col.selectbox("A", texts, index=min(1, len(texts) - 1), key="rank_why_a")
    second = b_col.selectbox("B", texts, index=0, key="rank_why_b")
    if go_col.button("Why?", key="rank_why_go", icon=":material/help:"):
        st.session_state["rank_pair"] = (second, first)
    pair = st.session_state.get("rank_pair")
    if pair is not None and all(t in texts for t in pair):
        if pair[0] == pair[1]:
            st.info("Pick two different candidates to contrast.")
        else:
            show_contrasts(rankings, query, pair, results["prompts"])
    render_share(query, texts, list(rankings), pair, results["prompts"])


def show_contrasts(rankings: dict[str, Ranking], query: str, pair: tuple[str, str], prompts: str) -> None:
    for column, (name, ranking) in zip(st.columns(len(rankings)), rankings.items(), strict=True):
        with column:
            maps = {}
            for text in pair:
                result = map_of(name, query, text, prompts)
                if result is None:
                    return
                maps[text] = result
            contrast = rk.contrast_of(ranking, maps, *pair)
            fig = build_contrast_figure(contrast, model_name=short_model_name(name))
            render.render_figure(fig, rk.contrast_config(fig, name), key=f"rank-why-{name}", box=f"rank-why-box-{name}")
            rk.render_pulled_up(contrast)
            render.render_downloads(rk.contrast_downloads(contrast, name), key=f"rank-why-dl-{name}", label="Export")


def render_share(query: str, texts: list[str], models: list[str], pair: tuple[str, str] | None, prompts: str) -> None:
    params = rk.share_query(query, texts, models, pair or (), prompts)
    render.write_query(params)
    with st.expander("Share this ranking", icon=":material/link:"):
        st.code(share_url(st.context.url, params), language=None, wrap_lines=True)
        if len(texts) > rk.MAX_URL_CANDIDATES:
            st.caption(f"More than {rk.MAX_URL_CANDIDATES} candidates: the link carries the query and models only.")


def main() -> None:
    backend.keep_computing(())  # this session's page no longer shows a map computing
    render.inject_css()
    st.title("Rank candidates")
    st.caption(
        "Why did the retriever pick this? The model's own ranking of your candidates against a query, "
        "each candidate's map on demand, and which query tokens pulled one candidate above another."
    )
    read_url_once()
    installed = [m.name for m in backend.available_models() if m.installed]
    query, candidates, models, pressed = inputs(installed)
    if pressed or st.session_state.pop("rank_auto", False):
        if not models:
            st.session_state["rank_error"] = "Pick at least one model."
            st.session_state.pop("rank_results", None)
        else:
            rank_all(query, candidates, models)
    if st.session_state.get("rank_error"):
        st.error(literal_markdown(st.session_state["rank_error"]))
        return
    results = st.session_state.get("rank_results")
    if results:
        show_rankings(results)


main()
