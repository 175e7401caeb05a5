"""The Rank page's pieces: candidates from what the user typed or uploaded, the URL, the ranked table,
and the contrast of two candidates built from their maps (the maths is attribution.ranking's)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from attribution.core.options import ExplainOptions
from attribution.errors import InputError
from attribution.ranking import Contrast, Ranking, ranking_options
from attribution.result import Attribution
from attribution.viz import exports
from attribution.viz.contrast import build_contrast_figure
from attribution.viz.heatmap import chart_config, short_model_name
from attribution.viz.layout import Style
from attribution.workflows.rank import parse_candidates

UPLOAD_TYPES = ["json", "csv", "tsv", "txt"]
MAX_URL_CANDIDATES = 50  # more than this are not put in a share link (it would be too long to carry)
MAP_OPTIONS = ranking_options(ExplainOptions())  # the query with the query prompt, candidates the document one
# The page's prompt choices: the model's retrieval prompts (query / document), or none on either text.
PROMPT_CHOICES = {
    "retrieval": ("The model's query and document prompts (as in retrieval)", MAP_OPTIONS),
    "none": ("No prompts", ExplainOptions(prompt_a="", prompt_b="")),
}


def options_for(choice: str) -> ExplainOptions:
    """The options a prompt choice of the page stands for (unknown: the retrieval prompts)."""
    return PROMPT_CHOICES.get(choice, PROMPT_CHOICES["retrieval"])[1]


def typed_candidates(text: str) -> list[str]:
    """One candidate per non-blank line of the box."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def uploaded_candidates(name: str, data: bytes) -> list[str]:
    """Candidates of an uploaded JSON list, CSV/TSV (a 'text' column or one column) or text file."""
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text: save it as UTF-8 and upload it again.") from None
    return parse_candidates(raw, name=name.lower())


def url_state(params: Mapping[str, Sequence[str]]) -> dict[str, object]:
    """What a shared link asks for: query (q), candidates (c, repeated), models (m, repeated), contrast (why),
    prompts (retrieval | none)."""
    return {
        "prompts": (params.get("prompts") or ["retrieval"])[-1],
        "query": (params.get("q") or [""])[-1],
        "candidates": [c for c in params.get("c", []) if c.strip()],
        "models": list(params.get("m", [])),
        "why": list(params.get("why", []))[:2],
    }


def share_query(
    query: str, candidates: Sequence[str], models: Sequence[str], why: Sequence[str] = (), prompts: str = "retrieval"
) -> dict[str, str | list[str]]:
    """The URL parameters that reopen this ranking (the candidates only while the link stays short)."""
    out: dict[str, str | list[str]] = {"q": query, "m": list(models)}
    if prompts != "retrieval":
        out["prompts"] = prompts
    if len(candidates) <= MAX_URL_CANDIDATES:
        out["c"] = list(candidates)
    if len(why) == 2:
        out["why"] = list(why)
    return out


def ranked_table(ranking: Ranking) -> pd.DataFrame:
    """Rank, score and candidate text, best first (truncated candidates flagged)."""
    return pd.DataFrame(
        {
            "rank": [e.rank for e in ranking.entries],
            "score": [round(e.score, 4) for e in ranking.entries],
            "candidate": [e.text + (" [truncated]" if e.truncated else "") for e in ranking.entries],
        }
    )


def with_maps(ranking: Ranking, maps: Mapping[str, Attribution]) -> Ranking:
    """The ranking with the given maps (by candidate text) attached to their entries."""
    entries = [dataclasses.replace(e, attribution=maps.get(e.text, e.attribution)) for e in ranking.entries]
    return dataclasses.replace(ranking, entries=entries)


def contrast_of(ranking: Ranking, maps: Mapping[str, Attribution], first: str, second: str) -> Contrast:
    """The contrast of two candidates (by text) of this ranking, their maps given."""
    full = with_maps(ranking, maps)
    positions = {e.text: k for k, e in enumerate(full.entries)}
    return full.contrast(positions[first], positions[second])


def contrast_downloads(contrast: Contrast, model_name: str) -> list[exports.Download]:
    """HTML, PNG/SVG and the 16:9 slide of the contrast figure, plus its numbers as JSON."""

    def build(style: Style) -> go.Figure:
        return build_contrast_figure(contrast, style=style, model_name=short_model_name(model_name))

    stem = f"pairlens_why_{contrast.higher.rank}_over_{contrast.lower.rank}_{short_model_name(model_name)}"
    data = exports.Download(
        "Contrast (JSON)", f"{stem}.json", "application/json", lambda: json.dumps(contrast.to_dict(), indent=1)
    )
    return [*exports.figure_downloads(build, stem, slide=True), data]


def contrast_config(fig: go.Figure, model_name: str) -> dict[str, Any]:
    return chart_config(fig, f"pairlens_contrast_{short_model_name(model_name)}")


def render_pulled_up(contrast: Contrast) -> None:
    """The query tokens that pulled each candidate up, as two short lists."""
    up, down = contrast.pulled_up(k=5)
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Query tokens for #{contrast.higher.rank}**")
        st.dataframe(pd.DataFrame(up, columns=["token", "difference"]), hide_index=True)
    with right:
        st.markdown(f"**Query tokens for #{contrast.lower.rank}**")
        st.dataframe(pd.DataFrame(down, columns=["token", "difference"]), hide_index=True)
    st.caption(
        f"Score gap {contrast.score_gap:+.4f}: the maps account for {contrast.attribution_gap:+.4f}, the rest "
        f"({contrast.rest_gap:+.4f}) is the part attributions cannot explain (reference terms)."
    )
