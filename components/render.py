"""Thin streamlit renderers: the only functions of the page that call `st.`.

Each takes values already built by the pure modules (figures, frames, HTML) or reads and
writes the widget keys listed in `components.state`.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from attribution.core.options import RULES
from attribution.models import ModelInfo
from attribution.result import Attribution
from attribution.settings import get_settings
from attribution.viz import exports
from attribution.viz.heatmap import file_stem, short_model_name
from attribution.viz.tables import score_card_html, top_pairs_frame, top_share_sentence

from . import backend
from .state import (
    DEFAULT_LAYER,
    LEVEL_OPTIONS,
    MAX_MODELS,
    MODE_OPTIONS,
    PageState,
    diff_options,
    layer_key,
    link_problem,
    literal_markdown,
    share_url,
)

log = logging.getLogger(__name__)
STEP_CHOICES = ["auto", "8", "16", "32", "64", "128", "256"]
MODE_LABELS = {"default": "model default", "approximate": "approximate", "exact": "exact"}
LEVEL_LABELS = {"token": "Tokens", "word": "Words"}
EXPLANATION = (
    "Each cell is how much a pair — a token of text A (row) and a token of text B (column) — adds to "
    "the model's similarity score: **red raises it, blue lowers it**. All cells add up to the "
    "*attribution sum*; the *reference terms* are the part of the score no pair explains."
)
HOW_TO_READ = """
- **Method.** Integrated Jacobians (Moeller et al., EMNLP 2023): the hidden states at the chosen
  layer move from a neutral reference to the input, and the change of the similarity along that
  path is split over token pairs. Deeper layers give more faithful, more contextual maps.
- **Integration error** is the attribution sum minus what it should converge to; it turns orange
  above the tolerance. Raise *steps* to lower it.
- **Top pairs** outlines the strongest cells (by absolute value) and lists them with their share of
  the attribution sum.
- **Words** sums subword cells into the words of the text (spaCy), so models with different
  tokenizers can be compared word for word; the difference map below does exactly that.
- **Special tokens** ([CLS], [SEP], <s>) often carry much of the sum; hiding them does not change
  the shares, which stay shares of the full sum.
"""


def inject_css() -> None:
    """Load assets/style.css into the page."""
    st.html(f"<style>{backend.read_asset('style.css')}</style>")


def render_header() -> None:
    """Logo, tagline and the one-paragraph explanation of the map."""
    st.logo(str(backend.ASSETS / "logo.svg"), size="large")
    st.markdown(
        "<div class='pl-header'><span class='pl-title'>PairLens</span>"
        "<span class='pl-tagline'>why a sentence encoder finds two texts similar, "
        "token pair by token pair</span></div>",
        unsafe_allow_html=True,
    )
    st.markdown(EXPLANATION)


def render_notices(notices: Sequence[str]) -> None:
    """One warning box listing every link or input value that was adjusted (shown as literal text)."""
    if notices:
        items = "\n".join(f"- {literal_markdown(n)}" for n in notices)
        st.warning("Some settings were adjusted:\n" + items, icon="⚠️")


def render_example_picker(examples: Sequence[dict[str, str]], on_pick: Callable[[], None]) -> None:
    """A selectbox of example pairs; picking one fills both texts and explains them."""
    st.selectbox(
        "Example pairs",
        options=list(range(len(examples))),
        index=None,
        format_func=lambda k: f"{examples[k]['category']} · {examples[k]['name']}",
        placeholder="Try an example pair…",
        key="example",
        on_change=on_pick,
        label_visibility="collapsed",
    )


def render_inputs(models: Sequence[ModelInfo], state: PageState) -> bool:
    """The input form (texts, models, advanced options); True on the run it was submitted."""
    settings = get_settings()
    installed = [m.name for m in models if m.installed]
    missing = [m for m in models if not m.installed]
    options = installed + [m for m in state.models if m not in installed]
    descriptions = {m.name: m.description for m in models}
    architectures = {m.name: m.architecture for m in models}
    steps_options = STEP_CHOICES + ([state.steps] if state.steps not in STEP_CHOICES else [])
    with st.form("inputs", border=False, enter_to_submit=False):
        col_a, col_b = st.columns(2)
        col_a.text_area("Text A — rows", key="text_a", height=88, max_chars=settings.max_text_chars)
        col_b.text_area("Text B — columns", key="text_b", height=88, max_chars=settings.max_text_chars)
        col_models, col_adv, col_go = st.columns([5, 3, 1.2], vertical_alignment="bottom")
        col_models.multiselect(
            f"Models (1–{MAX_MODELS}, shown side by side)",
            options=options,
            key="models",
            max_selections=MAX_MODELS,
            format_func=short_model_name,
            accept_new_options=settings.allow_custom_models,
            help="\n\n".join(
                f"**{literal_markdown(short_model_name(n))}**{_architecture_note(architectures.get(n))}: "
                f"{descriptions.get(n, 'custom model')}"
                for n in options
            ),
        )
        with col_adv.popover("Advanced options", width="stretch"):
            st.selectbox(
                "Steps",
                steps_options,
                key="steps",
                accept_new_options=True,
                help=f"Quadrature nodes: 'auto' raises them until the integration error is within "
                f"tolerance; or type a whole number from 1 to {settings.max_steps}.",
            )
            st.selectbox("Quadrature rule", RULES, key="rule", help="gauss-legendre converges fastest.")
            st.selectbox(
                "Mode",
                MODE_OPTIONS,
                key="mode",
                format_func=lambda mode: MODE_LABELS[mode],
                help="approximate explains f(a)·f(b); exact explains (f(a) − f(ref))·(f(b) − f(ref)), the "
                "default of models fine-tuned for it. The layer is chosen per model above its map.",
            )
            st.text_input(
                "Prompt name",
                key="prompt_name",
                placeholder="the model's default",
                help="One of the model's saved prompts (e.g. query, document), prepended to both texts as "
                "sentence-transformers does. Prompt tokens stay in the reference and show with Special tokens.",
            )
            st.text_input(
                "Prompt text",
                key="prompt",
                placeholder="none",
                max_chars=settings.max_text_chars,
                help="Or the prompt itself, e.g. 'query: ' (used instead of the prompt name).",
            )
        submitted = col_go.form_submit_button("Explain", type="primary", width="stretch")
    if missing:
        st.caption(
            "Not installed: " + "; ".join(f"**{short_model_name(m.name)}** — `{m.install_hint}`" for m in missing)
        )
    return bool(submitted)


def _architecture_note(architecture: str | None) -> str:
    """' (bert)' after a model name in the picker's help, literal; '' when unknown."""
    return f" ({literal_markdown(architecture)})" if architecture else ""


def render_prompt(message: str) -> None:
    """A friendly prompt shown instead of results (nothing is computed)."""
    st.info(message, icon="✍️")


def render_view_controls(max_top: int, n_models: int, has_pos: bool, pos_note: str | None) -> None:
    """The toolbar that changes how results are shown (never recomputes)."""
    cols = st.columns([1.5, 1.9, 1.45, 1.55, 1.95], vertical_alignment="center")
    cols[0].segmented_control(
        "Level",
        LEVEL_OPTIONS,
        key="level",
        format_func=lambda level: LEVEL_LABELS[level],
        required=True,
        label_visibility="collapsed",
    )
    cols[1].slider(
        "Top pairs",
        min_value=0,
        max_value=max_top,
        key="top",
        help="Outline the k strongest cells (by |value|) and list them below each map.",
    )
    cols[2].toggle(
        "POS overlay",
        key="pos",
        disabled=not has_pos,
        help="Colour strips and labels by part of speech (spaCy UPOS)." if has_pos else pos_note,
    )
    cols[3].toggle("Special tokens", key="special", help="Show [CLS], [SEP], <s> and prompt rows and columns.")
    cols[4].toggle(
        "Shared colour scale",
        key="shared",
        disabled=n_models < 2,
        help="One colour range for all models, so equal colours mean equal contributions.",
    )


def render_model_header(info: ModelInfo | None, name: str) -> None:
    """Model name and one-line description at the top of its column."""
    st.markdown(f"<div class='pl-model'>{html.escape(short_model_name(name))}</div>", unsafe_allow_html=True)
    if info is not None:
        st.caption(info.description)


def render_layer_select(model: str, num_layers: int, default_layer: int) -> None:
    """Per-model layer choice (None = the engine's default)."""
    st.selectbox(
        "Layer",
        options=[DEFAULT_LAYER, *range(num_layers + 1)],
        key=layer_key(model),
        format_func=lambda v: (
            f"default ({default_layer})" if v == DEFAULT_LAYER else f"{v}" + (" (embeddings)" if v == 0 else "")
        ),
        help=f"Attribute at the input of this layer: 0 = token embeddings, {num_layers} = the output. "
        "Changing it recomputes this model only.",
    )


def render_score_card(result: Attribution) -> None:
    """Similarity, attribution sum, reference terms, integration error, layer, steps, time."""
    st.markdown(score_card_html(result), unsafe_allow_html=True)


def render_result_notes(result: Attribution) -> None:
    """Warnings the engine attached (truncation, not converged) and missing-tagger notes."""
    for message in result.warnings:
        st.warning(message, icon="⚠️")


def result_slots(single: bool) -> tuple[DeltaGenerator, DeltaGenerator, DeltaGenerator]:
    """(score card, map, details) containers: map beside the details for one model, stacked for several."""
    if single:
        card = st.container()
        left, right = st.columns([5, 4], gap="large")
        return card, left, right
    return st.container(), st.container(), st.container()


def render_heatmap(fig: go.Figure, config: dict, key: str) -> None:
    """The interactive heatmap (theme off, so the page shows what the exports contain)."""
    st.plotly_chart(fig, config=config, theme=None, key=key, width="stretch")


def render_top_pairs(view: Attribution, k: int, show_pos: bool) -> None:
    """Caption 'the top k pairs carry X %...' and the table of the k strongest pairs."""
    if k <= 0:
        return
    st.markdown(f"<div class='pl-topline'>{html.escape(top_share_sentence(view, k))}</div>", unsafe_allow_html=True)
    frame = top_pairs_frame(view, k)
    frame[["share", "cumulative share"]] *= 100  # shown as percent
    has_pos = show_pos and bool(frame["POS A"].astype(bool).any())
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height=min(36 + 35 * len(frame), 36 + 35 * 10),
        column_order=[c for c in frame.columns if has_pos or not c.startswith("POS")],
        column_config={
            "rank": st.column_config.NumberColumn("#", width="small"),
            "value": st.column_config.NumberColumn("value", format="%+.4f"),
            "share": st.column_config.NumberColumn("share", format="%.1f %%"),
            "cumulative share": st.column_config.NumberColumn("cumulative", format="%.1f %%"),
        },
    )


def render_downloads(view: Attribution, fig: go.Figure, config: dict, key: str, width: int, height: int) -> None:
    """CSV, JSON, standalone HTML, and PNG/SVG when kaleido has a browser (else a note)."""
    stem = file_stem(view)
    ok, note = exports.renderer_status()
    items: list[tuple[str, str, str, Callable[[], str | bytes]]] = [
        ("Matrix (CSV)", "csv", "text/csv", lambda: exports.matrix_csv(view)),
        ("Result (JSON)", "json", "application/json", lambda: exports.result_json(view)),
        ("Interactive figure (HTML)", "html", "text/html", lambda: exports.figure_html(fig, config)),
    ]
    if ok:
        items += [
            (
                f"Image (PNG, {exports.IMAGE_SCALE}×)",
                "png",
                "image/png",
                lambda: exports.figure_image(fig, "png", width, height),
            ),
            ("Image (SVG)", "svg", "image/svg+xml", lambda: exports.figure_image(fig, "svg", width, height)),
        ]
    with st.popover("Download", icon=":material/download:", width="stretch"):
        for label, ext, mime, make in items:
            st.download_button(
                label, make, f"{stem}.{ext}", mime, key=f"{key}-{ext}", on_click="ignore", width="stretch"
            )
        if not ok:
            st.caption(note)
        st.caption("The camera icon on the chart saves a PNG at 4× of exactly what you see.")


def render_progress(slot: DeltaGenerator, fraction: float, text: str) -> None:
    """A model's progress bar (fraction done, with the time left) in its placeholder."""
    slot.progress(min(max(fraction, 0.0), 1.0), text=text)


def render_failure(name: str, message: str) -> None:
    """An error box in a model's column (the other columns still render); the message is literal text."""
    st.error(literal_markdown(message), icon="🚫")


def render_unexpected(name: str, exc: BaseException) -> None:
    """A short message for an unexpected exception (the traceback goes to the server log)."""
    log.exception("PairLens: %s failed", name, exc_info=exc)
    st.error(
        f"{short_model_name(name)} failed unexpectedly ({type(exc).__name__}). Try again or pick another "
        "model; the details are in the server log.",
        icon="🚫",
    )


def render_difference_section(names: Sequence[str]) -> None:
    """Heading, explanation and (with 3 models) the choice of which two models to compare."""
    st.markdown("<div class='pl-section'>Where the models disagree</div>", unsafe_allow_html=True)
    st.caption(
        "Word-level maps of the two models subtracted cell by cell: red where the first model credits "
        "a word pair more, blue where the second does. Words line up even where the tokenizers split "
        "them differently; special tokens are left out."
    )
    if len(names) > 2:
        st.selectbox(
            "Compare",
            diff_options(len(names)),
            key="diff",
            format_func=lambda p: f"{short_model_name(names[p[0]])} − {short_model_name(names[p[1]])}",
        )


def render_difference(fig: go.Figure, config: dict, frame: pd.DataFrame) -> None:
    """The difference map beside the table of the word pairs the models disagree on most."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(fig, config=config, theme=None, key="difference", width="stretch")
    with right:
        st.markdown("<div class='pl-topline'>largest disagreements</div>", unsafe_allow_html=True)
        number = st.column_config.NumberColumn(format="%+.4f")
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={name: number for name in frame.columns[2:]},
        )


def render_share(query: dict[str, str | list[str]], results: Sequence[Attribution] = ()) -> None:
    """A copyable link that reopens exactly this view; past MAX_LINK_CHARS a notice and JSON downloads instead."""
    link = share_url(st.context.url, query)
    problem = link_problem(link)
    with st.expander("Share this view", icon=":material/link:"):
        if problem is not None:
            st.info(literal_markdown(problem), icon=":material/link_off:")
            for index, result in enumerate(results):
                st.download_button(
                    f"Result of {short_model_name(result.model_name)} (JSON)",
                    functools.partial(exports.result_json, result),
                    f"{file_stem(result)}.json",
                    "application/json",
                    key=f"share-json-{index}",
                    on_click="ignore",
                )
            return
        st.caption("This link reopens the page with these texts, models and display settings.")
        st.code(link, language=None, wrap_lines=True)


def render_how_to_read() -> None:
    """The longer explanation, collapsed."""
    with st.expander("How to read the map", icon=":material/help:"):
        st.markdown(HOW_TO_READ)


def write_query(query: dict[str, str | list[str]]) -> None:
    """Mirror the current inputs into the URL (only when they changed, and only a link that fits)."""
    if link_problem(share_url(st.context.url, query)) is not None:
        return  # the address bar keeps the last link that the server accepts
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v if isinstance(v, list) else [v] for k, v in query.items()}
    if current != wanted:
        st.query_params.from_dict(query)


def read_query() -> dict[str, list[str]]:
    """The URL parameters, every key as a list."""
    return {k: st.query_params.get_all(k) for k in st.query_params}
