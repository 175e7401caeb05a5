"""The page's cached backend: models and the tagger once per process, results in a bounded cache.

`explain_cached` is keyed by every input that changes the numbers (model, texts and the
ExplainOptions); view changes (top k, overlays, level) never reach it. Input problems
(PairLensError) are cached as a `Failure` so a rerun does not retry them; anything else
propagates for the page to report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from attribution.core import engine
from attribution.core.options import ExplainOptions
from attribution.errors import PairLensError
from attribution.models import LoadedModel, ModelInfo, list_models, load_model
from attribution.result import Attribution
from attribution.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class Failure:
    """A computation refused with a user-facing message."""

    message: str


@st.cache_resource(show_spinner=False)
def get_model(name: str) -> LoadedModel:
    """The loaded model (once per server process)."""
    return load_model(name)


@st.cache_resource(show_spinner=False)
def tagger_status() -> tuple[str | None, str | None]:
    """Load the spaCy tagger once; (model name or None, note saying what to install)."""
    from attribution.result.linguistics import tagger_status as status

    return status()


@st.cache_data(ttl=60, show_spinner=False)
def available_models() -> list[ModelInfo]:
    """list_models(), refreshed every minute (so a model installed meanwhile shows up)."""
    return list_models()


@st.cache_data(max_entries=get_settings().result_cache, show_spinner=False)
def explain_cached(model_name: str, text_a: str, text_b: str, options: ExplainOptions) -> Attribution | Failure:
    """explain() with POS annotation, or the Failure message of a PairLensError."""
    try:
        return engine.explain(get_model(model_name), text_a, text_b, options)
    except PairLensError as exc:
        return Failure(str(exc))


@st.cache_data(show_spinner=False)
def load_examples() -> list[dict[str, str]]:
    """The example pairs of assets/examples.json."""
    data = json.loads((ASSETS / "examples.json").read_text(encoding="utf-8"))
    return list(data["pairs"])


@st.cache_data(show_spinner=False)
def read_asset(name: str) -> str:
    """A text asset (CSS, SVG) by file name."""
    return (ASSETS / name).read_text(encoding="utf-8")
