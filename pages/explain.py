"""The explainer page (the default page of app.py). Wiring only; the parts live in components/."""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import partial

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from attribution.core.options import ExplainOptions
from attribution.core.tokens import check_text
from attribution.errors import PairLensError
from attribution.models import ModelInfo
from attribution.result import Attribution
from attribution.settings import get_settings
from attribution.viz import exports
from attribution.viz.combined import build_combined, combined_stem
from attribution.viz.heatmap import (
    build_change_map,
    build_difference_map,
    build_heatmap,
    chart_config,
    difference_stem,
    file_stem,
    short_model_name,
    similarity_label,
    symmetric_limit,
)
from attribution.viz.layout import ON_PAGE, Style
from attribution.viz.links import build_links
from attribution.viz.slides import build_slide
from attribution.viz.sweep import build_sweep
from attribution.viz.tables import difference_frame, exact_mode_warning
from attribution.viz.textview import text_view_html
from attribution.whatif import Edit, Side, compare, edited_pair, mask_problem, token_edit
from components import backend, faithfulness, render
from components.display import column_cell, display_view
from components.state import (
    DEFAULT_LAYER,
    MAX_TOP,
    PageState,
    checked_layer,
    from_session,
    layer_key,
    parse_query,
    session_layer,
    to_query,
    to_session,
)

NOTICES = "_pl_notices"
SUBMITTED = ("_pl_text_a", "_pl_text_b")  # the texts last explained (the boxes may hold newer ones)
COMPUTED_LAYERS = "_pl_layers"  # each model's layer when its map was last drawn
CONFIRMED = "_pl_confirmed"  # expensive computations this session agreed to start
CANCELLED = "_pl_cancelled"  # computations this session stopped (not restarted until Explain is pressed)
FAILED = "_pl_failed"  # {computation key: message} of jobs that failed while their column's watcher waited
QUICK_WAIT_SECONDS = 1.0  # after the first map, how long a run waits for the others before watching them
WATCH_SECONDS = 2.0  # each run of a computing column's watcher polls its job this long
WATCH_EVERY_SECONDS = 0.5  # and the watcher runs again this often (backend.ABANDON_GRACE covers the gap)
RESYNC = "_pl_resync"  # set by a callback inside the results fragment that changed the whole page
# Widgets that are not drawn on every run (toolbar, per-model layers) lose their value unless kept.
KEPT_KEYS = (
    "level", "top", "pos", "special", "shared", "diff", "view", "clip", "diffmode", "tool", "tool_model",
    "wi_side", "wi_op", "wi_text",
)  # fmt: skip


def init_session(models: list[ModelInfo]) -> None:
    """On a session's first run: every input from the URL, with notices for what was adjusted."""
    if st.session_state.get("_pl_init"):
        for key in [*KEPT_KEYS, *(k for k in st.session_state if str(k).startswith("layer::"))]:
            if key in st.session_state:
                st.session_state[key] = st.session_state[key]
        return
    state, notices = parse_query(render.read_query(), models, allow_custom=custom_models_allowed())
    for key, value in to_session(state).items():
        st.session_state[key] = value
    st.session_state[SUBMITTED[0]], st.session_state[SUBMITTED[1]] = state.text_a, state.text_b
    st.session_state["example"] = None
    st.session_state[NOTICES] = notices
    st.session_state["_pl_init"] = True


LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def custom_models_allowed() -> bool:
    """Typed hub ids and model folders: PAIRLENS_ALLOW_CUSTOM_MODELS when the operator set it, else only
    when the page serves one person on this machine (bound to localhost, as `make run` does)."""
    raw = (os.environ.get("PAIRLENS_ALLOW_CUSTOM_MODELS") or "").strip().lower()
    if raw:
        return raw in ("1", "true", "yes")
    return str(st.get_option("server.address") or "").strip() in LOCAL_ADDRESSES


def page_state(notices: list[str] | None = None) -> PageState:
    """What the widgets hold, with the texts last explained (not what the boxes hold meanwhile); the
    library's message for an option it refused (a typed number of steps) goes to `notices`."""
    state = from_session(st.session_state, notices)
    state.text_a = str(st.session_state.get(SUBMITTED[0], state.text_a))
    state.text_b = str(st.session_state.get(SUBMITTED[1], state.text_b))
    return state


def pending_texts() -> list[str]:
    """'A', 'B': the boxes that hold text not explained yet."""
    return [
        label
        for label, key, submitted in (("A", "text_a", SUBMITTED[0]), ("B", "text_b", SUBMITTED[1]))
        if key in st.session_state
        and submitted in st.session_state
        and st.session_state[key] != st.session_state[submitted]
    ]


def submit_texts() -> None:
    """The boxes' texts become the explained pair; edits of the old pair no longer apply; computations
    cancelled before may start again."""
    st.session_state[CANCELLED] = set()
    st.session_state[FAILED] = {}
    for key, submitted in (("text_a", SUBMITTED[0]), ("text_b", SUBMITTED[1])):
        if st.session_state.get(submitted) != st.session_state.get(key):
            st.session_state["edits"] = []
        st.session_state[submitted] = st.session_state.get(key, "")


def pick_example() -> None:
    """Fill both texts from the chosen example pair (the next run explains it)."""
    chosen = st.session_state.get("example")
    if chosen is None:
        return
    pair = backend.load_examples()[chosen]
    st.session_state["text_a"] = pair["a"]
    st.session_state["text_b"] = pair["b"]
    submit_texts()
    st.session_state[NOTICES] = []


def input_problems(state: PageState) -> list[str]:
    """Why nothing can be computed yet (empty text, no model), as friendly sentences."""
    problems = []
    for label, text in (("A", state.text_a), ("B", state.text_b)):
        try:
            check_text(text, label, get_settings().max_text_chars)
        except PairLensError as exc:
            problems.append(str(exc))
    if not state.models:
        problems.append("Pick at least one model above.")
    return problems


def start_column(name: str, state: PageState, info: ModelInfo | None, notices: list[str]) -> backend.Computation | None:
    """Inside a model's column: header, layer choice, then start the computation (None, with an
    error box, when the model cannot be used)."""
    head, layer_slot = st.columns([2.6, 1.8], vertical_alignment="bottom")
    with head:
        caption = render.render_model_header(info, name)
    try:
        with st.spinner(f"Loading {short_model_name(name)} (once per server)…", show_time=True):
            num_layers, default_layer = backend.model_layers(name)
        layer, notice = checked_layer(state.layer_of(name), num_layers, short_model_name(name))
        render.render_model_caption(caption, info, backend.model_device(name))
        if notice:
            notices.append(notice)
            st.session_state[layer_key(name)] = layer
        if st.session_state.get(layer_key(name)) is None:
            st.session_state[layer_key(name)] = DEFAULT_LAYER
        with layer_slot:
            render.render_layer_select(name, num_layers, default_layer)
        layer = session_layer(st.session_state.get(layer_key(name)))
        options = run_options(state, layer)
        key = backend.computation_key(name, state.text_a, state.text_b, options)
        if key in st.session_state.get(CANCELLED, ()):
            render.render_cancelled(name)
            return None
        failed = st.session_state.get(FAILED, {})
        if key in failed:
            render.render_failure(name, failed[key])
            return None
        if not backend.is_known(key):
            cost = backend.cost_of(name, state.text_a, state.text_b, options)
            with layer_slot:
                render.render_cost(cost)
            confirm_seconds = get_settings().confirm_seconds  # PAIRLENS_CONFIRM_SECONDS, read at this edge
            asks = not backend.is_running(key) and key not in st.session_state.get(CONFIRMED, ())
            if cost is not None and cost.seconds > confirm_seconds and asks:
                render.render_confirm(name, cost, partial(confirm_computation, key))
                return None
        # The backend applies the operator's work cap (PAIRLENS_MAX_PAGE_WORK) before computing.
        return backend.start(name, state.text_a, state.text_b, options)
    except PairLensError as exc:
        render.render_failure(name, str(exc))
    except Exception as exc:
        render.render_unexpected(name, exc)
    return None


def compute_columns(
    state: PageState, columns: list[DeltaGenerator], infos: dict[str, ModelInfo], notices: list[str]
) -> tuple[dict[str, Attribution], dict[str, tuple[backend.Computation, DeltaGenerator]]]:
    """Start every model's computation: (results at hand, {model: (computation still running, its slot)}).

    Nothing here waits for a slow map, so one slow model never holds up (or greys) the other columns
    and the tools: each running column gets a watcher (watch_column, called at the end of the run)
    that shows its progress and Cancel and reruns the page when its map is ready. Only when every
    column is computing does this run wait, for the first map and up to QUICK_WAIT_SECONDS more for the others.
    """
    computations: dict[str, backend.Computation] = {}
    slots: dict[str, DeltaGenerator] = {}
    for name, column in zip(state.models, columns, strict=True):
        with column:
            computation = start_column(name, state, infos.get(name), notices)
            slots[name] = st.container()
        if computation is not None:
            computations[name] = computation
    pending = [c for c in computations.values() if c.pending]
    backend.keep_computing(c.key for c in pending)  # before any wait: what the last run showed is replaced now
    if pending:
        bars = {c.model: slots[c.model].empty() for c in pending}
        cancels = {c.model: slots[c.model].empty() for c in pending}
        for computation in pending:
            render.render_cancel_button(cancels[computation.model], computation.model,
                                        partial(cancel_computation, computation.key))  # fmt: skip

        def show(computation: backend.Computation) -> None:
            fraction, text = backend.progress_text(short_model_name(computation.model), computation.status)
            render.render_progress(bars[computation.model], fraction, text)

        if len(pending) == len(computations):  # nothing to draw yet: wait for the first map, and the others
            backend.wait(pending, show, first=True)  # that finish soon after it, so they are drawn together
            backend.wait([c for c in pending if c.pending], show, budget=QUICK_WAIT_SECONDS)
        else:
            backend.wait(pending, show, budget=0.0)  # one poll: draw what finished meanwhile, watch the rest
        for slot in [*bars.values(), *cancels.values()]:
            slot.empty()
    results: dict[str, Attribution] = {}
    running: dict[str, tuple[backend.Computation, DeltaGenerator]] = {}
    for name, computation in computations.items():
        if computation.pending:
            running[name] = (computation, slots[name])
        elif isinstance(computation.outcome, Attribution):
            results[name] = computation.outcome
            if backend.capped_by_page_work(computation.outcome):
                notices.append(
                    f"{short_model_name(name)}: steps=auto stopped at {computation.outcome.steps} steps; this "
                    f"server allows at most {computation.outcome.step_cap} for these texts at this layer "
                    "(PAIRLENS_MAX_PAGE_WORK), and the integration error had not reached the tolerance. Shorter "
                    "texts or a deeper layer allow more."
                )
        elif computation.outcome is not None:
            with slots[name]:
                render.render_failure(name, computation.outcome.message)
    return results, running


@st.fragment(run_every=WATCH_EVERY_SECONDS)
def watch_column(name: str, text_a: str, text_b: str, options: ExplainOptions) -> None:
    """A computing column's progress bar and Cancel button, on its own: it polls the model's job for
    up to WATCH_SECONDS per run (the rest of the page stays live meanwhile) and reruns the page once
    the map or a failure is there. Rerun every WATCH_EVERY_SECONDS while the session is open."""
    key = backend.computation_key(name, text_a, text_b, options)
    if key in st.session_state.get(CANCELLED, ()):
        st.rerun(scope="app")
    computation = backend.start(name, text_a, text_b, options)  # takes the job up again
    if computation.pending:
        bar, cancel_slot = st.empty(), st.empty()
        render.render_cancel_button(cancel_slot, name, partial(cancel_computation, key), key="cancel-watch")

        def show(computation: backend.Computation) -> None:
            fraction, text = backend.progress_text(short_model_name(name), computation.status)
            render.render_progress(bar, fraction, text)

        backend.wait([computation], show, budget=WATCH_SECONDS)
    if computation.pending:
        return
    if isinstance(computation.outcome, backend.Failure):  # drawn by the next run, never computed again by it
        st.session_state[FAILED] = {**st.session_state.get(FAILED, {}), key: computation.outcome.message}
    st.rerun(scope="app")


def confirm_computation(key: object) -> None:
    """The 'Compute it' button of an expensive map: this session starts it on the next run."""
    st.session_state[CONFIRMED] = {*st.session_state.get(CONFIRMED, ()), key}


def explain_cost_line(state: PageState) -> str | None:
    """What pressing Explain would cost: each model's estimate for the texts in the boxes."""
    parts = []
    for name in state.models:
        try:
            layer = session_layer(st.session_state.get(layer_key(name)))
            text_a, text_b = str(st.session_state.get("text_a", "")), str(st.session_state.get("text_b", ""))
            options = run_options(state, layer)
            if backend.is_known(backend.computation_key(name, text_a, text_b, options)):
                continue
            cost = backend.cost_of(name, text_a, text_b, options)
        except PairLensError:
            continue
        if cost is not None:
            parts.append(f"{short_model_name(name)} {cost.describe()}")
    return "Explain: " + "; ".join(parts) if parts else None


def cancel_computation(key: object) -> None:
    """The Cancel button: this session stops waiting (the rerun lets go of the job, which the backend
    cancels unless another session waits for it) and does not start it again until Explain."""
    cancelled = set(st.session_state.get(CANCELLED, ()))
    cancelled.add(key)
    st.session_state[CANCELLED] = cancelled


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
    render.render_texts(get_settings().max_text_chars)
    if render.render_inputs(models, from_session(st.session_state), custom_models_allowed()):
        submit_texts()
        st.session_state[NOTICES] = []
    render.render_pending(pending_texts())
    if pending_texts():
        render.render_explain_cost(explain_cost_line(from_session(st.session_state)))
    render.render_submit_shortcut()
    results_area(models)


@st.fragment
def results_area(models: list[ModelInfo]) -> None:
    """Everything below the inputs. A fragment: view controls rerun only this part of the page."""
    try:
        show_results(models)
    except Exception as exc:
        render.render_unexpected("The page", exc)


def layers_moved(state: PageState) -> bool:
    """True when a model's layer differs from the one its map was last drawn at."""
    drawn = st.session_state.get(COMPUTED_LAYERS, {})
    return any(name in drawn and drawn[name] != state.layer_of(name) for name in state.models)


def show_results(models: list[ModelInfo]) -> None:
    """Notices, view controls, one column per model, the difference map, Explore, the share link."""
    if st.session_state.pop(RESYNC, False):
        st.rerun(scope="app")  # a callback of this fragment changed the text boxes above it
    notices: list[str] = list(st.session_state.get(NOTICES, []))
    state = page_state(notices)
    if pending_texts() and layers_moved(state):
        # A layer change asks for a computation: explain the texts as shown, never the old ones silently.
        submit_texts()
        st.rerun(scope="app")
    notice_slot = st.container()
    problems = input_problems(state)
    if problems:
        backend.keep_computing(())
        with notice_slot:
            render.render_notices(notices)
        render.render_prompt(" ".join(problems))
        render.render_how_to_read()  # the view toolbar, which holds it, is not drawn without results
        render.write_query(to_query(state))
        return

    toolbar = st.container()
    infos = {m.name: m for m in models}
    with st.spinner("Loading the part-of-speech tagger…"):
        _, tagger_note = backend.tagger_status()
    cell = column_cell(state.text_a, state.text_b, len(state.models))
    columns = render.model_columns(len(state.models))
    results, running = compute_columns(state, columns, infos, notices)
    state = page_state()  # a layer the model refused is now its default
    st.session_state[COMPUTED_LAYERS] = {name: state.layer_of(name) for name in state.models}

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

    clip = state.clip_value()
    shared = state.shared and len(views) > 1
    zmax = symmetric_limit(*(v.matrix for v in views.values()), clip=clip) if shared else None
    style = replace(ON_PAGE, dark=render.is_dark(), max_cell=cell)
    pos = state.pos and has_pos
    for index, (name, column) in enumerate(zip(state.models, columns, strict=True)):
        if name not in views:
            continue
        view = views[name]
        with column:
            card_slot, map_slot, detail_slot = render.result_slots(index)
        with card_slot:
            render.render_score_card(results[name], exact_mode_warning(results[name]))
            render.render_result_notes(results[name])
        figure = partial(draw_view, view, state, pos, zmax, clip, len(views))
        fig = figure(style)
        stem = file_stem(view) if state.view == "map" else file_stem(view, "links")
        with map_slot:
            render.render_heatmap(fig, chart_config(fig, stem), key=f"map-{index}", box=f"pl-figure-{index}")
        with detail_slot:
            render.render_top_pairs(view, state.top, state.pos)
            render.render_text_view(text_view_html(view, f"pl-tv-{index}"))
            slide = partial(build_slide, [view], top_k=state.top, clip=clip)
            items = exports.result_downloads(view, file_stem(view)) + exports.figure_downloads(
                figure, stem, slide_build=slide
            )
            render.render_downloads(items, f"dl-{index}")
    if views:
        shown = list(views.values())
        make = combined_builder(shown, state.top, pos, clip)
        slide = partial(build_slide, shown, top_k=state.top, clip=clip)
        render.render_combined_downloads(exports.figure_downloads(make, combined_stem(shown), slide_build=slide))

    pair = state.diff_pair()
    if pair is not None:
        show_difference(state, results, pair, clip, style, running)

    if results:
        show_explore(state, results, style)
        faithfulness.render_faithfulness(
            state.models, results, state.text_a, state.text_b, lambda n: run_options(state, results[n].layer), style
        )

    query = to_query(state)
    render.render_share(query, [results[name] for name in state.models if name in results])
    render.write_query(query)
    for name, (computation, slot) in running.items():  # last: the rest of the page is drawn already
        assert computation.options is not None
        with slot:
            watch_column(name, state.text_a, state.text_b, computation.options)


def combined_builder(
    shown: list[Attribution], top_k: int, pos: bool, clip: float | None
) -> Callable[[Style], go.Figure]:
    """The 'Download all side by side' figure as a function of the style only, as figure_downloads calls it."""

    def build(style: Style) -> go.Figure:
        return build_combined(shown, top_k=top_k, pos_overlay=pos, clip=clip, style=style)

    return build


def draw_view(
    view: Attribution,
    state: PageState,
    pos: bool,
    zmax: float | None,
    clip: float | None,
    drawn: int,
    style: Style,
) -> go.Figure:
    """The chosen view of one model's result: the map, or the strongest links. zmax: the colour scale the
    `drawn` maps share (None: the map's own); a model still computing or failed does not share it."""
    if state.view == "links":
        return build_links(view, max(state.top, 1), style=style)
    shared_by = drawn if zmax is not None else 1
    return build_heatmap(view, top_k=state.top, pos_overlay=pos, zmax=zmax, clip=clip, style=style, shared_by=shared_by)


def show_difference(
    state: PageState,
    results: dict[str, Attribution],
    pair: tuple[int, int],
    clip: float | None,
    style: Style,
    running: Collection[str] = (),
) -> None:
    """Where two models disagree, word by word (shares of each sum, or raw)."""
    first, second = state.models[pair[0]], state.models[pair[1]]
    render.render_difference_section(state.models)
    if first in running or second in running:
        render.render_prompt("The difference map appears when both maps are ready.")
        return
    if first not in results or second not in results:
        render.render_prompt("The difference map needs both models to succeed.")
        return
    words_1 = results[first].to_words(keep_special=False)
    words_2 = results[second].to_words(keep_special=False)
    mode = state.diffmode

    def figure(chosen: Style) -> go.Figure:
        return build_difference_map(words_1, words_2, mode=mode, clip=clip, style=chosen)

    fig = figure(ON_PAGE.themed(style.dark))
    stem = difference_stem(words_1, words_2)
    frame = difference_frame(words_1, words_2, mode=mode)
    items = [*exports.figure_downloads(figure, stem), exports.frame_download(frame, "Table (CSV)", f"{stem}.csv")]
    render.render_difference(fig, chart_config(fig, stem), frame, mode == "share", items)


# ----------------------------------------------------------------------------- Explore: what if, layer sweep


def tool_model(state: PageState, results: dict[str, Attribution]) -> str | None:
    name = state.models[state.tool_model] if state.tool_model < len(state.models) else state.models[0]
    return name if name in results else next(iter(results), None)


def show_explore(state: PageState, results: dict[str, Attribution], style: Style) -> None:
    """The Explore section: what-if edits or the layer sweep of one model."""
    render.render_explore_picker(state.models)
    name = tool_model(state, results)
    if name is None or not state.tool:
        return
    if state.tool == "whatif":
        show_whatif(state, name, results[name], style)
    elif state.tool == "sweep":
        show_sweep(state, name, results[name], style)


def run_options(state: PageState, layer: int | None) -> ExplainOptions:
    """The options of a model's column at this layer (the backend applies the work cap)."""
    return state.options.replace(layer=layer)


def show_sweep(state: PageState, name: str, result: Attribution, style: Style) -> None:
    """Every layer of one model (computed once, cached), as small multiples; a click opens one."""
    layers = list(range(result.num_layers + 1))
    progress = render.progress_slot()
    figure_slot = st.empty()
    found: list[Attribution] = []
    refused: list[str] = []
    clip = state.clip_value()
    # Deep layers first: they converge in few steps, while layer 0 may need hundreds of nodes.
    for done, layer in enumerate(sorted(layers, reverse=True)):

        def show(computation: backend.Computation, done: int = done, layer: int = layer) -> None:
            fraction, text = backend.progress_text(f"layer {layer}", computation.status)
            label = f"Layer sweep of {short_model_name(name)}: {done} of {len(layers)} layers done; {text}"
            render.render_progress(progress, (done + fraction) / len(layers), label)

        if found:  # what is done so far, while the rest computes
            render.render_sweep_preview(figure_slot, build_sweep(found, clip=clip, style=Style(dark=style.dark)))
        try:
            options = run_options(state, layer)
            outcome = backend.explain_cached(name, state.text_a, state.text_b, options, show)
        except PairLensError as exc:
            outcome = backend.Failure(str(exc))
        if isinstance(outcome, backend.Failure):
            refused.append(f"layer {layer}: {outcome.message}")
            continue
        found.append(display_view(outcome, state.level, state.special))
    progress.empty()
    for message in refused:
        render.render_failure(name, message)
    if not found:
        return
    fig = build_sweep(found, clip=clip, chosen=result.layer, style=Style(dark=style.dark))
    stem = file_stem(result, "layers")
    with figure_slot.container():
        render.render_sweep(fig, chart_config(fig, stem), [r.layer for r in found], partial(open_layer, name))


def open_layer(name: str) -> None:
    """Sweep callback: the clicked layer becomes the model's layer (and shown texts get explained)."""
    chosen = st.session_state.get("sweep_open")
    if chosen is not None:
        st.session_state[layer_key(name)] = int(chosen)
        st.session_state["sweep_open"] = None


def current_edits() -> list[Edit]:
    return [Edit.from_param(raw) for raw in st.session_state.get("edits", [])]


def show_whatif(state: PageState, name: str, result: Attribution, style: Style) -> None:
    """Token chips to drop, mask or replace; the edited pair explained with the same options; before vs after."""
    pad = backend.get_model(name).tokenizer.pad_token
    for key, default in (("wi_side", "a"), ("wi_op", "drop")):
        if st.session_state.get(key) is None:
            st.session_state[key] = default
    side = st.session_state["wi_side"]
    text_side = result.a if side == "a" else result.b
    hidden = text_side.special_or_prompt()
    chips = [(row, token) for row, token in enumerate(text_side.tokens) if not hidden[row]]
    mask_note = None if pad else f"{short_model_name(name)} has no padding token, so tokens cannot be masked."
    render.render_whatif_editor(chips, mask_note, partial(apply_edit, result, str(pad or "")), side)
    edits = current_edits()
    render.render_edits(
        [e.describe(state.text_a if e.side == "a" else state.text_b, str(pad)) for e in edits], undo_edit, clear_edits
    )
    if not edits:
        return
    try:
        text_a, text_b = edited_pair(state.text_a, state.text_b, edits, str(pad or ""))
        with st.spinner(f"Explaining the edited pair with {short_model_name(name)}…", show_time=True):
            options = run_options(state, result.layer)
            after = backend.explain_cached(name, text_a, text_b, options)
    except PairLensError as exc:
        render.render_failure(name, str(exc))
        return
    if isinstance(after, backend.Failure):
        render.render_failure(name, after.message)
        return
    for label, before_side, after_side in (("a", result.a, after.a), ("b", result.b, after.b)):
        problem = mask_problem(before_side, after_side, [e for e in edits if e.side == label], str(pad))
        if problem:
            st.warning(problem, icon="⚠️")
    comparison = compare(result, after)

    def figure(chosen: Style) -> go.Figure:
        return build_change_map(comparison, style=chosen, clip=state.clip_value())

    fig = figure(ON_PAGE.themed(style.dark))
    label = similarity_label(result)
    change = comparison.score_change
    summary = (
        f"{html.escape(label)} <b>{result.own_score:.3f}</b> → <b>{after.own_score:.3f}</b> "
        f"<span class='{'pl-up' if change >= 0 else 'pl-down'}'>({change:+.3f})</span> · cells "
        f"{result.attribution_sum:+.3f} → {after.attribution_sum:+.3f} · layer {result.layer}"
    )
    stem = file_stem(after, "whatif")
    render.render_whatif_result(
        summary,
        (text_a, text_b),
        fig,
        chart_config(fig, stem),
        exports.figure_downloads(figure, stem),
        partial(open_edited_pair, text_a, text_b),
    )


def apply_edit(result: Attribution, pad: str) -> None:
    """Apply callback: the chosen tokens of the chosen text, dropped, masked or replaced."""
    side: Side = "b" if st.session_state.get("wi_side") == "b" else "a"
    rows = sorted(st.session_state.get(f"wi_tokens_{side}") or [])
    op = st.session_state.get("wi_op") or "drop"
    text = str(st.session_state.get("wi_text") or "")
    text_side = result.a if side == "a" else result.b
    try:
        if not rows:
            raise PairLensError("Click one or more tokens first.")
        if op == "mask" and not pad:
            raise PairLensError("This model has no padding token to mask with.")
        if op == "replace":  # one replacement for the span the chosen tokens cover
            first = token_edit(text_side, side, rows[0], "replace", text)
            last = token_edit(text_side, side, rows[-1], "replace", text)
            new = [Edit(first.side, first.start, last.end, "replace", text)]
        else:
            new = [token_edit(text_side, side, row, op) for row in rows]
        edits = [*current_edits(), *new]
        edited_pair(st.session_state[SUBMITTED[0]], st.session_state[SUBMITTED[1]], edits, pad)  # checks overlaps
    except PairLensError as exc:
        st.session_state[NOTICES] = [*st.session_state.get(NOTICES, []), str(exc)]
        return
    st.session_state["edits"] = [e.to_param() for e in edits]
    st.session_state[f"wi_tokens_{side}"] = []


def undo_edit() -> None:
    st.session_state["edits"] = list(st.session_state.get("edits", []))[:-1]


def clear_edits() -> None:
    st.session_state["edits"] = []


def open_edited_pair(text_a: str, text_b: str) -> None:
    """The edited pair becomes the explained pair (and the boxes hold it)."""
    st.session_state["text_a"], st.session_state["text_b"] = text_a, text_b
    submit_texts()
    st.session_state["edits"] = []
    st.session_state["tool"] = None
    st.session_state[RESYNC] = True


try:
    main()
except Exception as exc:
    render.render_unexpected("The page", exc)
