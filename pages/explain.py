"""The explainer page (the default page of app.py). Wiring only; the parts live in components/."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from attribution.core.options import ExplainOptions
from attribution.core.tokens import check_text
from attribution.errors import PairLensError
from attribution.models import ModelInfo
from attribution.result import Attribution
from attribution.settings import get_settings
from attribution.viz.heatmap import (
    build_difference_map,
    build_heatmap,
    chart_config,
    figure_width,
    short_model_name,
    symmetric_limit,
)
from attribution.viz.tables import difference_frame
from components import backend, render
from components.display import display_view
from components.state import (
    DEFAULT_LAYER,
    MAX_TOP,
    PageState,
    clamp_layer,
    from_session,
    layer_key,
    parse_query,
    parse_steps,
    session_layer,
    to_query,
    to_session,
)

NOTICES = "_pl_notices"
# Widgets that are not drawn on every run (toolbar, per-model layers) lose their value unless kept.
KEPT_KEYS = ("level", "top", "pos", "special", "shared", "diff")


def init_session(models: list[ModelInfo]) -> None:
    """On a session's first run: every input from the URL, with notices for what was adjusted."""
    if st.session_state.get("_pl_init"):
        for key in [*KEPT_KEYS, *(k for k in st.session_state if str(k).startswith("layer::"))]:
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]
        return
    state, notices = parse_query(render.read_query(), models, allow_custom=get_settings().allow_custom_models)
    for key, value in to_session(state).items():
        st.session_state[key] = value
    st.session_state["example"] = None
    st.session_state[NOTICES] = notices
    st.session_state["_pl_init"] = True


def pick_example() -> None:
    """Fill both texts from the chosen example pair (the next run explains it)."""
    chosen = st.session_state.get("example")
    if chosen is None:
        return
    pair = backend.load_examples()[chosen]
    st.session_state["text_a"] = pair["a"]
    st.session_state["text_b"] = pair["b"]
    st.session_state[NOTICES] = []


def input_problems(state: PageState) -> list[str]:
    """Why nothing can be computed yet (empty text, no model), as friendly sentences."""
    problems = []
    for label, text in (("A", state.text_a), ("B", state.text_b)):
        try:
            check_text(text, label)
        except PairLensError as exc:
            problems.append(str(exc))
    if not state.models:
        problems.append("Pick at least one model above.")
    return problems


def start_column(name: str, state: PageState, info: ModelInfo | None, notices: list[str]) -> backend.Computation | None:
    """Inside a model's column: header, layer choice, then start the computation (None, with an
    error box, when the model cannot be used)."""
    head, layer_slot = st.columns([3, 1.4], vertical_alignment="bottom")
    with head:
        render.render_model_header(info, name)
    try:
        with st.spinner(f"Loading {short_model_name(name)} (once per server)…", show_time=True):
            num_layers, default_layer = backend.model_layers(name)
        layer, notice = clamp_layer(state.layer_of(name), num_layers, short_model_name(name))
        if notice:
            notices.append(notice)
            st.session_state[layer_key(name)] = layer
        if st.session_state.get(layer_key(name)) is None:
            st.session_state[layer_key(name)] = DEFAULT_LAYER
        with layer_slot:
            render.render_layer_select(name, num_layers, default_layer)
        layer = session_layer(st.session_state.get(layer_key(name)))
        options = ExplainOptions.create(
            layer=layer, steps=state.steps_value(), rule=state.rule, mode=state.mode_value(), **state.prompt_values()
        )
        # The backend applies the operator's work cap (PAIRLENS_MAX_PAGE_WORK) before computing.
        return backend.start(name, state.text_a, state.text_b, options)
    except PairLensError as exc:
        render.render_failure(name, str(exc))
    except Exception as exc:
        render.render_unexpected(name, exc)
    return None


def compute_columns(
    state: PageState, columns: list[DeltaGenerator], infos: dict[str, ModelInfo], notices: list[str]
) -> dict[str, Attribution]:
    """Start every model's computation, then wait for all with a progress bar per column.

    A rerun or a closed session interrupts the wait inside render_progress; the backend then
    cancels the jobs nobody takes up again within a second.
    """
    computations: dict[str, backend.Computation] = {}
    slots: dict[str, DeltaGenerator] = {}
    for name, column in zip(state.models, columns, strict=True):
        with column:
            computation = start_column(name, state, infos.get(name), notices)
            slots[name] = st.empty()
        if computation is not None:
            computations[name] = computation

    def show(computation: backend.Computation) -> None:
        fraction, text = backend.progress_text(short_model_name(computation.model), computation.status)
        render.render_progress(slots[computation.model], fraction, text)

    backend.wait(list(computations.values()), show)
    results: dict[str, Attribution] = {}
    for name, computation in computations.items():
        slots[name].empty()
        if isinstance(computation.outcome, Attribution):
            results[name] = computation.outcome
            if capped_by_page_work(computation.outcome):
                notices.append(
                    f"{short_model_name(name)}: steps=auto stopped at {computation.outcome.steps} steps, the most "
                    "this server allows for these texts at this layer (PAIRLENS_MAX_PAGE_WORK), before the "
                    "integration error reached the tolerance. Shorter texts or a deeper layer allow more."
                )
        elif computation.outcome is not None:
            with slots[name]:
                render.render_failure(name, computation.outcome.message)
    return results


def capped_by_page_work(result: Attribution) -> bool:
    """steps=auto stopped short of PAIRLENS_MAX_STEPS: the operator's work cap stopped it."""
    return result.tolerance is not None and not result.converged and result.steps < get_settings().max_steps


def shown_view(name: str, result: Attribution, state: PageState) -> Attribution | None:
    """The result at the chosen level, special tokens shown or not (None with an error box)."""
    try:
        return display_view(result, state.level, state.special)
    except PairLensError as exc:
        render.render_failure(name, str(exc))
    return None


def main() -> None:
    """Build the page for the current inputs."""
    models = backend.available_models()
    init_session(models)
    render.inject_css()
    render.render_header()
    render.render_example_picker(backend.load_examples(), pick_example)
    if render.render_inputs(models, from_session(st.session_state)):
        st.session_state[NOTICES] = []
    render.render_how_to_read()
    results_area(models)


@st.fragment
def results_area(models: list[ModelInfo]) -> None:
    """Everything below the inputs. A fragment: view controls rerun only this part of the page."""
    try:
        show_results(models)
    except Exception as exc:
        render.render_unexpected("The page", exc)


def show_results(models: list[ModelInfo]) -> None:
    """Notices, view controls, one column per model, the difference map and the share link."""
    state = from_session(st.session_state)
    notices: list[str] = list(st.session_state.get(NOTICES, []))
    state.steps = parse_steps(state.steps, notices)
    notice_slot = st.container()
    problems = input_problems(state)
    if problems:
        with notice_slot:
            render.render_notices(notices)
        render.render_prompt(" ".join(problems))
        render.write_query(to_query(state))
        return

    toolbar = st.container()
    infos = {m.name: m for m in models}
    with st.spinner("Loading the part-of-speech tagger…"):
        _, tagger_note = backend.tagger_status()
    columns = st.columns(len(state.models), gap="medium")
    results = compute_columns(state, columns, infos, notices)
    state = from_session(st.session_state)  # layers may have been clamped
    state.steps = parse_steps(state.steps, [])

    views: dict[str, Attribution] = {}
    for name, column in zip(state.models, columns, strict=True):
        if name in results:
            with column:
                view = shown_view(name, results[name], state)
            if view is not None:
                views[name] = view
    max_top = min(MAX_TOP, max((v.matrix.size for v in views.values()), default=MAX_TOP))
    if st.session_state.get("top", 0) > max_top:
        st.session_state["top"] = max_top
    state.top = int(st.session_state.get("top", state.top))
    has_pos = any(v.has_pos for v in views.values())
    with toolbar:
        render.render_view_controls(max(max_top, 1), len(state.models), has_pos, tagger_note)
    with notice_slot:
        render.render_notices(notices)

    zmax = symmetric_limit(*(v.matrix for v in views.values())) if state.shared and len(views) > 1 else None
    for index, (name, column) in enumerate(zip(state.models, columns, strict=True)):
        if name not in views:
            continue
        view = views[name]
        with column:
            card_slot, map_slot, detail_slot = render.result_slots(single=len(state.models) == 1)
        with card_slot:
            render.render_score_card(results[name])
            render.render_result_notes(results[name])
        fig = build_heatmap(view, top_k=state.top, pos_overlay=state.pos and has_pos, zmax=zmax)
        config = chart_config(view)
        with map_slot:
            render.render_heatmap(fig, config, key=f"map-{index}")
        with detail_slot:
            render.render_top_pairs(view, state.top, state.pos)
            width = figure_width(view.shape[1], state.pos)
            render.render_downloads(view, fig, config, f"dl-{index}", width, int(fig.layout.height))

    pair = state.diff_pair()
    if pair is not None:
        first, second = state.models[pair[0]], state.models[pair[1]]
        render.render_difference_section(state.models)
        if first in results and second in results:
            words_1 = results[first].to_words(keep_special=False)
            words_2 = results[second].to_words(keep_special=False)
            fig = build_difference_map(words_1, words_2)
            render.render_difference(fig, chart_config(words_1), difference_frame(words_1, words_2))
        else:
            render.render_prompt("The difference map needs both models to succeed.")

    query = to_query(state)
    render.render_share(query, [results[name] for name in state.models if name in results])
    render.write_query(query)


try:
    main()
except Exception as exc:
    render.render_unexpected("The page", exc)
