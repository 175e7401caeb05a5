"""Thin streamlit renderers: the only functions of the page that call `st.`.

Each takes values already built by the pure modules (figures, frames, HTML) or reads and
writes the widget keys listed in `components.state`.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from attribution.core.cost import CostEstimate
from attribution.core.options import RULES
from attribution.models import ModelInfo
from attribution.result import Attribution
from attribution.settings import get_settings
from attribution.viz import exports
from attribution.viz.heatmap import file_stem, short_model_name
from attribution.viz.tables import score_card_html, top_pairs_html, top_share_sentence

from . import backend
from .state import (
    CLIP_OPTIONS,
    DEFAULT_LAYER,
    DIFF_MODES,
    LEVEL_OPTIONS,
    MAX_MODELS,
    MODE_OPTIONS,
    ROLE_CHOICES,
    VIEW_OPTIONS,
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
VIEW_LABELS = {"map": "Map", "links": "Strongest links"}
CLIP_LABELS = {"none": "full range", "99": "clip at 99th pct", "95": "clip at 95th pct", "90": "clip at 90th pct"}
DIFF_MODE_LABELS = {"share": "shares of each model's sum", "raw": "raw contributions"}
TOOL_LABELS = {"whatif": "What if…", "sweep": "Layer sweep"}
OP_LABELS = {"drop": "Drop", "mask": "Mask (pad)", "replace": "Replace"}
SUBMIT_SHORTCUT_JS = """
<script>
(() => {
  if (window.__pairlensShortcut) return;
  window.__pairlensShortcut = true;
  const BOXES = ".st-key-text_a, .st-key-text_b";
  const explainButton = () => [...document.querySelectorAll("button")].find((b) => b.innerText.trim() === "Explain");
  // Ctrl+Enter (Cmd+Enter) in a text box: Streamlit sends the typed text on this key press; press Explain after it.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    if (!(event.target.closest && event.target.closest(BOXES))) return;
    setTimeout(() => { const button = explainButton(); if (button) button.click(); }, 150);
  }, true);
  // Explain pressed while a text box has focus: the box's text must reach the server before the press,
  // or the run that carries the press is cut short by the one that carries the text and the press is lost.
  let held = null;
  document.addEventListener("pointerdown", (event) => {
    const button = event.target.closest && event.target.closest("button");
    const active = document.activeElement;
    if (!button || button !== explainButton() || !(active && active.closest && active.closest(BOXES))) return;
    held = button;
    active.blur();
  }, true);
  document.addEventListener("click", (event) => {
    if (!held || !event.isTrusted) return;
    const button = held;
    held = null;
    event.preventDefault();
    event.stopPropagation();
    setTimeout(() => button.click(), 150);
  }, true);
})();
</script>
"""
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
- **The score card** shows the model's own similarity, and as bars how it splits: all cells of the
  map plus the *reference terms* (what no pair explains), minus the integration error. Off-the-shelf
  models have large reference terms. In *exact* mode the map explains the similarity of the shifted
  embeddings f(x) − f(reference), which equals the model's score only for models trained for it.
- **Σ row / Σ column** bars beside the map are each token's total; **Strongest links** draws the
  top pairs as lines between the two texts, easier to read than a map for long texts.
- **Colours** can saturate at a percentile of |value| so a few strong cells do not wash out the rest.
- **What if…** drops, masks or replaces tokens and shows how the score and every cell change.
  *Mask* puts the model's padding token in the token's place (what the reference input has there),
  so every other token keeps its position; *drop* deletes the token's characters and re-tokenizes.
"""


DARK_CSS = """
/* Dark theme: the light theme's reds are too dark on a dark background (WCAG AA needs 4.5:1 for text). */
.pl-score-value, .pl-up { color: #f4a582; }
.pl-down { color: #9ecae1; }
.pl-score-off .pl-score-value, .pl-facts dd.pl-warn, .pl-pending { color: #fdba74; }
[data-testid="stCaptionContainer"] { color: #aeb4bd; }
/* The selected option of a segmented control is drawn in the primary colour, too dark for text here. */
[data-selected="true"] [data-testid="stMarkdownContainer"] p { color: #f4a582; }
.pl-top-table th { background: #1f2937; }
"""


def inject_css() -> None:
    """Load assets/style.css into the page, with the dark theme's colours when it shows."""
    dark = DARK_CSS if is_dark() else ""
    st.html(f"<style>{backend.read_asset('style.css')}{dark}</style>")


def render_header() -> None:
    """Logo, tagline and the one-paragraph explanation of the map."""
    st.logo(str(backend.ASSETS / ("logo-dark.svg" if is_dark() else "logo.svg")), size="large")
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


def render_texts(max_chars: int) -> None:
    """The two text boxes (outside the form: what they hold is compared with what was explained).

    No max_chars on the boxes: the browser would drop an over-long paste without a word. A text
    over the limit is kept, and a message under the boxes says how long it is and what to do.
    """
    col_a, col_b = st.columns(2)
    col_a.text_area("Text A — rows", key="text_a", height=88)
    col_b.text_area("Text B — columns", key="text_b", height=88)
    for label, key in (("A", "text_a"), ("B", "text_b")):
        length = len(str(st.session_state.get(key) or ""))
        if length > max_chars:
            st.error(
                f"Text {label} has {length:,} characters; this page explains at most {max_chars:,} "
                "(PAIRLENS_MAX_TEXT_CHARS). Shorten it: only the first few hundred tokens are used anyway.",
                icon="✂️",
            )


def render_pending(labels: Sequence[str]) -> None:
    """A mark under the text boxes when they hold text that is not explained yet."""
    if labels:
        which = " and ".join(f"Text {label}" for label in labels)
        st.markdown(
            f"<div class='pl-pending'>✎ {html.escape(which)} changed and {'is' if len(labels) == 1 else 'are'} "
            "not explained yet: press <b>Explain</b> or Ctrl+Enter. The maps below show the previous text.</div>",
            unsafe_allow_html=True,
        )


def render_submit_shortcut() -> None:
    """Ctrl+Enter (Cmd+Enter) in a text box presses Explain; Explain waits for the box's text to be sent."""
    # In the sidebar: an element of no height still adds a gap, which in the main area pushed the maps down.
    st.sidebar.html(SUBMIT_SHORTCUT_JS, unsafe_allow_javascript=True)


CUSTOM_MODELS_LOCAL = "Or type a Hugging Face hub id or a model folder into the box and press Enter."
CUSTOM_MODELS_LOCAL_HELP = (
    "A hub id such as sentence-transformers/all-distilroberta-v1, or the path of a sentence-transformers "
    "folder on this machine. A model that cannot be used (offline, not a sentence encoder, an unsupported "
    "architecture) says why in its column."
)
CUSTOM_MODELS_SHARED = "Only the models listed; the operator can allow others with PAIRLENS_ALLOW_CUSTOM_MODELS=1."
CUSTOM_MODELS_SHARED_HELP = (
    "This server offers only the models listed. Its operator can let users type hub ids and model folders "
    "with PAIRLENS_ALLOW_CUSTOM_MODELS=1; run the page on your own machine (make run, bound to localhost) to "
    "use any model."
)


def install_command(hint: str) -> str:
    """The first command of a model's install hint ('make mpnet  (or: pip install ...)' -> 'make mpnet')."""
    return hint.split("  (or:")[0].strip()


def render_inputs(models: Sequence[ModelInfo], state: PageState, allow_custom: bool) -> bool:
    """The input form (models, advanced options, Explain); True on the run it was submitted.

    allow_custom: the model box also takes typed hub ids and folders (a one-person local page)."""
    settings = get_settings()
    installed = [m.name for m in models if m.installed]
    missing = [m for m in models if not m.installed]
    options = installed + [m for m in state.models if m not in installed]
    descriptions = {m.name: m.description for m in models}
    architectures = {m.name: m.architecture for m in models}
    typed_steps = str(st.session_state.get("steps", state.options.steps))  # as typed, even when refused
    steps_options = STEP_CHOICES + ([typed_steps] if typed_steps not in STEP_CHOICES else [])
    with st.form("inputs", border=False, enter_to_submit=False):
        # One wrapping row: at narrow widths the button moves down instead of being clipped.
        row = st.container(horizontal=True, vertical_alignment="bottom", gap="small", key="pl-inputs-row")
        col_models = col_adv = col_go = row
        col_models.multiselect(
            f"Models (1–{MAX_MODELS}, shown side by side)",
            options=options,
            key="models",
            max_selections=MAX_MODELS,
            format_func=short_model_name,
            accept_new_options=allow_custom,
            placeholder="Pick or type a model" if allow_custom else "Pick a model",
            help="\n\n".join(
                f"**{literal_markdown(short_model_name(n))}**{_architecture_note(architectures.get(n))}: "
                f"{descriptions.get(n, 'custom model')}"
                for n in options
            ),
        )
        with col_adv.popover("Advanced options", width=200):
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
            st.selectbox(
                "Text roles",
                list(ROLE_CHOICES),
                key="roles",
                format_func=ROLE_CHOICES.__getitem__,
                help="Retrieval models encode queries and documents with different prompts (E5's 'query: ' "
                "and 'passage: ', ...). A role gives each text the model's own query or document prompt, as "
                "sentence-transformers' encode_query / encode_document do; the prompt boxes below are then "
                "not used.",
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
        submitted = col_go.form_submit_button("Explain", type="primary", width=120)
    render_model_sources(missing, allow_custom)
    return bool(submitted)


def render_model_sources(missing: Sequence[ModelInfo], allow_custom: bool) -> None:
    """One line under the model box: where other models come from, and the listed ones not installed
    (the full commands in its help, so the line stays one line and the maps start higher)."""
    line = CUSTOM_MODELS_LOCAL if allow_custom else CUSTOM_MODELS_SHARED
    help_text = CUSTOM_MODELS_LOCAL_HELP if allow_custom else CUSTOM_MODELS_SHARED_HELP
    if missing:
        line += " Not installed: " + "; ".join(
            f"**{short_model_name(m.name)}** (`{install_command(m.install_hint)}`)" for m in missing
        )
        help_text += "\n\n" + "\n\n".join(f"**{short_model_name(m.name)}**: `{m.install_hint}`" for m in missing)
    st.caption(line, help=help_text)


def _architecture_note(architecture: str | None) -> str:
    """' (bert)' after a model name in the picker's help, literal; '' when unknown."""
    return f" ({literal_markdown(architecture)})" if architecture else ""


def render_prompt(message: str) -> None:
    """A friendly prompt shown instead of results (nothing is computed)."""
    st.info(message, icon="✍️")


def render_view_controls(max_top: int, n_models: int, has_pos: bool, pos_note: str | None) -> None:
    """The toolbar that changes how results are shown (never recomputes); wraps at narrow widths."""
    bar = st.container(horizontal=True, vertical_alignment="center", gap="medium", key="pl-toolbar")
    with bar:
        st.segmented_control(
            "Level",
            LEVEL_OPTIONS,
            key="level",
            format_func=lambda level: LEVEL_LABELS[level],
            required=True,
            label_visibility="collapsed",
        )
        st.slider(
            "Top pairs",
            min_value=0,
            max_value=max_top,
            key="top",
            width=190,
            help="Outline the k strongest cells (by |value|) and list them below each map.",
        )
        st.toggle(
            "POS overlay",
            key="pos",
            disabled=not has_pos,
            help="Colour strips and labels by part of speech (spaCy UPOS)." if has_pos else pos_note,
        )
        st.toggle("Special tokens", key="special", help="Show [CLS], [SEP], <s> and prompt rows and columns.")
        st.toggle(
            "Shared colour scale",
            key="shared",
            disabled=n_models < 2,
            help="One colour range for all models, so equal colours mean equal contributions.",
        )
        st.segmented_control(
            "View",
            VIEW_OPTIONS,
            key="view",
            format_func=lambda view: VIEW_LABELS[view],
            required=True,
            label_visibility="collapsed",
            help="Map: every token pair. Strongest links: the top pairs as lines between the texts.",
        )
        st.selectbox(
            "Colours",
            CLIP_OPTIONS,
            key="clip",
            format_func=lambda clip: CLIP_LABELS[clip],
            label_visibility="collapsed",
            width=170,
            help="Clip the colour range at a percentile of |value|: pale maps of long texts get contrast "
            "(cells beyond it take the end colours).",
        )
        render_how_to_read()


def model_columns(n_models: int) -> list[DeltaGenerator]:
    """One column per model, side by side from 1200 px of window width, one below another under it.

    The keyed container lets assets/style.css stack the columns in narrower windows.
    """
    with st.container(key="pl-models"):
        return list(st.columns(n_models, gap="medium", border=n_models > 1))


CLOCK = ":material/schedule:"  # Streamlit's bundled icon font: drawn where no emoji font is installed


def render_cost(cost: CostEstimate | None) -> None:
    """Under a model's layer menu: how long its map should take here, before it starts."""
    if cost is not None:
        st.caption(f"{CLOCK} {cost.describe()}", help="Estimated from this request's work and the speed this server "
                   "measured on the maps it computed.")  # fmt: skip


def render_confirm(name: str, cost: CostEstimate, on_confirm: Callable[[], None]) -> None:
    """Instead of starting an expensive map: what it costs and a button to compute it anyway."""
    st.warning(
        f"This map would take {cost.describe()}. A deeper layer, shorter texts or fewer steps are faster.",
        icon=CLOCK,
    )
    st.button("Compute it", key=f"confirm::{name}", on_click=on_confirm, type="primary")


def render_explain_cost(line: str | None) -> None:
    """Beside the Explain button: what explaining the texts in the boxes would cost."""
    if line:
        st.caption(f"{CLOCK} {line}")


def render_model_header(info: ModelInfo | None, name: str) -> DeltaGenerator:
    """Model name and one-line description at the top of its column; returns the description's slot,
    which render_model_caption fills again once the model's device is known."""
    st.markdown(f"<div class='pl-model'>{html.escape(short_model_name(name))}</div>", unsafe_allow_html=True)
    slot = st.empty()
    render_model_caption(slot, info, None)
    return slot


def render_model_caption(slot: DeltaGenerator, info: ModelInfo | None, device: str | None) -> None:
    """The description and the device that computes this model's attributions (the library chose it:
    PAIRLENS_DEVICE), on one line."""
    parts = [info.description] if info is not None and info.description else []
    if device is not None:
        parts.append(f"computed on {'GPU ' if device.startswith('cuda') else ''}`{device}`")
    if parts:
        slot.caption(" · ".join(parts))


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


def render_score_card(result: Attribution, warning: str | None = None) -> None:
    """The model's own similarity, its decomposition, the facts; a warning when the map explains another score."""
    st.markdown(score_card_html(result), unsafe_allow_html=True)
    if warning:
        st.warning(warning, icon="⚠️")


def render_result_notes(result: Attribution) -> None:
    """Warnings the engine attached (truncation, not converged) and missing-tagger notes."""
    for message in result.warnings:
        st.warning(message, icon="⚠️")


def result_slots(index: int) -> tuple[DeltaGenerator, DeltaGenerator, DeltaGenerator]:
    """(score card, figure, details): the map first, so it starts above the fold at 1440 x 900; the score
    card and the details beside it when the width allows, else below it."""
    body = st.container(horizontal=True, gap="small", key=f"pl-body-{index}")
    with body:
        figure = st.container(width="content", key=f"pl-figure-{index}")
        side = st.container(key=f"pl-details-{index}")
    with side:
        card = st.container()
        details = st.container()
    return card, figure, details


def render_heatmap(fig: go.Figure, config: dict, key: str, box: str | None = None) -> None:
    """A figure at the size its builder set (square cells); wider than its column, it scrolls sideways.

    Streamlit sizes a chart to its column, which would squeeze the cells of a wide map: a min-width
    on the chart inside its keyed container `box` (class st-key-<box>) keeps the figure's own width.
    """
    render_figure(fig, config, key, box or key)


def render_figure(fig: go.Figure, config: dict, key: str, box: str) -> None:
    """Any builder's figure at its own pixel size inside the scrolling container `box`."""
    width = int(fig.layout.width or 600)
    chart = f".st-key-{box} .st-key-{key}"  # the chart's element container, its wrapper and the chart
    st.html(f"<style>{chart}, {chart} > div, {chart} [data-testid='stPlotlyChart'] {{ min-width: {width}px; }}</style>")
    st.plotly_chart(fig, config=config, theme=None, key=key, width=width)


def is_dark() -> bool:
    """True when the page shows Streamlit's dark theme (figures follow it; exports stay light)."""
    try:
        return st.context.theme.type == "dark"
    except Exception:
        return False


def render_top_pairs(view: Attribution, k: int, show_pos: bool) -> None:
    """Caption 'the top k pairs carry X %...' and the table of the k strongest pairs."""
    if k <= 0:
        return
    st.markdown(f"<div class='pl-topline'>{html.escape(top_share_sentence(view, k))}</div>", unsafe_allow_html=True)
    st.html(top_pairs_html(view, k, show_pos))


def render_text_view(markup: str) -> None:
    """Both texts, each token shaded by its total; hovering one outlines its partners in the other text."""
    with st.expander("The texts, token by token", expanded=True, icon=":material/notes:"):
        st.caption("Shade: the token's row (A) or column (B) total. Hover a token to outline its 3 strongest partners.")
        st.html(markup)


def render_downloads(items: Sequence[exports.Download], key: str, label: str = "Download", width: int = 200) -> None:
    """A Download menu; each file is made only when its button is pressed."""
    ok, note = exports.renderer_status()
    with st.popover(label, icon=":material/download:", width=width):
        for item in items:
            if item.image and not ok:
                continue
            st.download_button(
                item.label,
                item.make,
                item.filename,
                item.mime,
                key=f"{key}-{item.filename.rsplit('_', 1)[-1]}-{item.label}",
                on_click="ignore",
                width="stretch",
            )
        if not ok:
            st.caption(note)
        st.caption("The camera icon on a chart saves a PNG of the same layout at 4×.")


def render_progress(slot: DeltaGenerator, fraction: float, text: str) -> None:
    """A model's progress bar (fraction done, with the time left) in its placeholder."""
    slot.progress(min(max(fraction, 0.0), 1.0), text=text)


def render_cancel_button(slot: DeltaGenerator, name: str, on_cancel: Callable[[], None], key: str = "cancel") -> None:
    """A Cancel button under a model's progress bar (`key`: which of the column's two waits draws it)."""
    slot.button("Cancel", key=f"{key}::{name}", on_click=on_cancel, help="Stop this computation")


def render_cancelled(name: str) -> None:
    """What a cancelled column shows instead of its map."""
    st.info("Cancelled. Press **Explain** to compute it again.", icon="⏹️")


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
    """Heading, explanation, what to compare (shares or raw) and, with 3 models, which two models."""
    st.markdown("<div class='pl-section'>Where the models disagree</div>", unsafe_allow_html=True)
    st.caption(
        "Word-level maps of two models subtracted cell by cell: red where the first model credits a word "
        "pair more, blue where the second does. Compare *shares of each model's sum* when the two sums "
        "differ (otherwise one model's larger sum turns everything one colour). Words line up even where "
        "the tokenizers split them differently; special tokens are left out."
    )
    row = st.container(horizontal=True, gap="medium", vertical_alignment="center")
    with row:
        st.segmented_control(
            "Compare",
            DIFF_MODES,
            key="diffmode",
            format_func=lambda mode: DIFF_MODE_LABELS[mode],
            required=True,
            label_visibility="collapsed",
        )
        if len(names) > 2:
            st.selectbox(
                "Models",
                diff_options(len(names)),
                key="diff",
                width=360,
                label_visibility="collapsed",
                format_func=lambda p: f"{short_model_name(names[p[0]])} − {short_model_name(names[p[1]])}",
            )


def render_difference(
    fig: go.Figure, config: dict, frame: pd.DataFrame, percent: bool, downloads: Sequence[exports.Download]
) -> None:
    """The difference map beside (or above) the table of the word pairs the models disagree on most."""
    body = st.container(horizontal=True, gap="large", key="pl-body-diff")
    with body:
        with st.container(width="content", key="pl-figure-diff"):
            render_figure(fig, config, "difference", "pl-figure-diff")
        with st.container(key="pl-details-diff"):
            st.markdown("<div class='pl-topline'>largest disagreements</div>", unsafe_allow_html=True)
            shown = frame.copy()
            if percent:
                shown[shown.columns[2:]] *= 100
            number = st.column_config.NumberColumn(format="%+.2f %%" if percent else "%+.4f", width=90)
            config_columns: dict[str, Any] = {name: number for name in shown.columns[2:]}
            config_columns["text A"] = st.column_config.TextColumn("text A", width=110)
            config_columns["text B"] = st.column_config.TextColumn("text B", width=110)
            st.dataframe(shown, hide_index=True, width="stretch", column_config=config_columns)
            render_downloads(downloads, "dl-diff")


def render_combined_downloads(items: Sequence[exports.Download]) -> None:
    """One menu for the figure with every model side by side, both sentences and each score's breakdown."""
    render_downloads(items, "dl-combined", label="Download all side by side", width=280)


def render_explore_picker(names: Sequence[str]) -> None:
    """The Explore section's heading, the tool (what-if edits, layer sweep) and, with several models, whose."""
    st.markdown("<div class='pl-section'>Explore</div>", unsafe_allow_html=True)
    row = st.container(horizontal=True, gap="medium", vertical_alignment="center", key="pl-explore")
    with row:
        st.segmented_control(
            "Tool",
            list(TOOL_LABELS),
            key="tool",
            format_func=lambda tool: TOOL_LABELS[tool],
            label_visibility="collapsed",
            help="What if…: drop, mask or replace tokens and see the score change. Layer sweep: the map at "
            "every layer of a model.",
        )
        if len(names) > 1:
            st.selectbox(
                "Model",
                list(range(len(names))),
                key="tool_model",
                width=260,
                label_visibility="collapsed",
                format_func=lambda k: short_model_name(names[k]),
            )


def progress_slot() -> DeltaGenerator:
    """Where render_progress writes (one line that updates)."""
    return st.empty()


def render_sweep_preview(slot: DeltaGenerator, fig: go.Figure) -> None:
    """The layers computed so far (replaced by render_sweep when all are done)."""
    slot.plotly_chart(fig, config={"displaylogo": False}, theme=None, width=int(fig.layout.width or 600))


def render_sweep(fig: go.Figure, config: dict, layers: Sequence[int], on_open: Callable[[], None]) -> None:
    """The small multiples and a row of layer buttons that open one as the main map."""
    with st.container(key="pl-figure-sweep"):
        render_figure(fig, config, "sweep", "pl-figure-sweep")
    st.pills(
        "Open a layer as the main map",
        list(layers),
        key="sweep_open",
        format_func=lambda layer: f"layer {layer}",
        on_change=on_open,
    )


def render_whatif_editor(
    tokens: Sequence[tuple[int, str]], mask_note: str | None, on_apply: Callable[[], None], side: str
) -> None:
    """Token chips of one text to click, the operation, the replacement, Apply."""
    names = dict(tokens)
    st.caption(
        "Click tokens, choose what to do, press Apply. **Drop** deletes the token's characters (the text is "
        "tokenized again); **Mask** puts the model's padding token in its place, the token the reference input "
        "has there, so every other token keeps its position; **Replace** types other text in its place."
    )
    st.segmented_control(
        "Text", ["a", "b"], key="wi_side", format_func=lambda s: f"Text {s.upper()}", required=True,
        label_visibility="collapsed",
    )  # fmt: skip
    st.pills(
        "Tokens",
        [row for row, _ in tokens],
        key=f"wi_tokens_{side}",
        selection_mode="multi",
        format_func=lambda row: names.get(row, str(row)),
        label_visibility="collapsed",
    )
    row = st.container(horizontal=True, gap="small", vertical_alignment="bottom")
    with row:
        st.segmented_control(
            "Operation",
            list(OP_LABELS),
            key="wi_op",
            format_func=lambda op: OP_LABELS[op],
            required=True,
            disabled=False,
        )
        if st.session_state.get("wi_op") == "replace":
            st.text_input("Replacement", key="wi_text", width=200, placeholder="the new text")
        st.button("Apply", key="wi_apply", on_click=on_apply, type="secondary")
    if mask_note:
        st.caption(mask_note)


def render_edits(descriptions: Sequence[str], on_undo: Callable[[], None], on_clear: Callable[[], None]) -> None:
    """The edits made so far, with Undo and Clear."""
    if not descriptions:
        return
    st.markdown("".join(f"<div class='pl-edit'>✎ {html.escape(d)}</div>" for d in descriptions), unsafe_allow_html=True)
    row = st.container(horizontal=True, gap="small")
    with row:
        st.button("Undo last edit", key="wi_undo", on_click=on_undo, icon=":material/undo:")
        st.button("Clear edits", key="wi_clear", on_click=on_clear, icon=":material/delete:")


def render_whatif_result(
    summary: str,
    texts: tuple[str, str],
    fig: go.Figure,
    config: dict,
    downloads: Sequence[exports.Download],
    on_open: Callable[[], None],
) -> None:
    """Score before and after, the edited texts, the difference map, and a button to explain the edited pair."""
    st.markdown(f"<div class='pl-whatif'>{summary}</div>", unsafe_allow_html=True)
    st.markdown(
        f"<div class='pl-edited'><b>A</b> {html.escape(texts[0])}<br><b>B</b> {html.escape(texts[1])}</div>",
        unsafe_allow_html=True,
    )
    with st.container(key="pl-figure-whatif"):
        render_figure(fig, config, "whatif", "pl-figure-whatif")
    row = st.container(horizontal=True, gap="small")
    with row:
        render_downloads(downloads, "dl-whatif")
        st.button("Explain the edited pair", key="wi_open", on_click=on_open, icon=":material/open_in_full:")


def render_share(query: dict[str, str | list[str]], results: Sequence[Attribution] = ()) -> None:
    """A copyable link that reopens exactly this view; past MAX_LINK_CHARS a notice and JSON downloads instead.

    The link's code block is drawn only while the expander is open (it reruns on opening): its syntax
    highlighter is the largest script a new session would otherwise load before its first map.
    """
    link = share_url(st.context.url, query)
    problem = link_problem(link)
    box = st.expander("Share this view", icon=":material/link:", key="pl-share", on_change="rerun")
    with box:
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
        if box.open:
            st.code(link, language=None, wrap_lines=True)


def render_how_to_read() -> None:
    """The longer explanation, behind a button (in the view toolbar, or alone when nothing is shown)."""
    with st.popover("How to read the map", icon=":material/help:", key="pl-how-to-read"):
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
