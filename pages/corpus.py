"""Corpus page: open a result folder of `python -m attribution analyze`, or start a small run.

Wiring only; the pure parts are components.corpus_page (folders, table, links) and
attribution.viz.corpus_figures (plots). A page of app.py's navigation; also runs on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from attribution.core.options import RULES
from attribution.errors import PairLensError
from attribution.models import list_models
from attribution.viz.corpus_figures import corpus_figures
from attribution.workflows import corpus
from attribution.workflows.data import read_pairs
from components import backend
from components import corpus_page as cp
from components.state import cut, literal_markdown

ROOT = Path(__file__).resolve().parents[1]
STSB_TEST = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
STEP_CHOICES = ["auto", "8", "16", "32", "64"]
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "txt"]


def pick_run(root: Path) -> Path | None:
    """A run folder chosen from the list under root or typed (?run=NAME preselects one)."""
    runs = cp.list_runs(root)
    wanted = st.query_params.get("run")
    if "run_pick" not in st.session_state and wanted:
        st.session_state["run_pick"] = wanted if any(r.name == wanted for r in runs) else None
        if st.session_state["run_pick"] is None:
            st.session_state["run_typed"] = wanted
    names = [r.name for r in runs]
    labels = {r.name: r.label for r in runs}
    left, right = st.columns([2, 1])
    with left:
        chosen = st.selectbox(
            "Result folder",
            names,
            index=None,
            key="run_pick",
            format_func=lambda n: labels.get(n, n),
            placeholder="Choose a run" if names else "No runs yet: start a small run above",
        )
    with right:
        typed = st.text_input("…or type its name", key="run_typed", help=f"The name of a folder inside {root}")
    name = typed.strip() or chosen
    if not name:
        return None
    try:
        path = cp.resolve_run(root, name)
    except PairLensError as exc:
        st.error(literal_markdown(str(exc)))
        return None
    st.query_params["run"] = path.name
    return path


def start_run_form(root: Path) -> None:
    """A run of at most MAX_PAGE_PAIRS pairs with a progress bar; selects it when done."""
    with st.expander("Start a small run", icon=":material/play_arrow:"):
        models = [m.name for m in list_models() if m.installed]
        sources = (["STS Benchmark test"] if STSB_TEST.is_file() else []) + ["Upload a file"]
        source = st.radio("Text pairs from", sources, horizontal=True, key="new_source")
        upload = None
        if source == "Upload a file":
            upload = st.file_uploader(
                "A table of text pairs (CSV or TSV with a header, STS Benchmark files, or JSON lines)",
                type=UPLOAD_TYPES,
                key="new_upload",
            )
        c1, c2, c3, c4 = st.columns(4)
        model = c1.selectbox("Model", models, key="new_model")
        limit = c2.number_input("How many pairs", 1, cp.MAX_PAGE_PAIRS, 10, key="new_limit")
        steps = c3.selectbox(
            "Steps", STEP_CHOICES, key="new_steps", help="Integration steps per pair; auto adds steps until accurate."
        )
        rule = c4.selectbox("Quadrature rule", RULES, key="new_rule", help="gauss-legendre converges fastest.")
        c5, c6 = st.columns(2)
        conv = c5.number_input(
            "Also check how many steps each layer needs, on this many pairs",
            0,
            3,
            0,
            key="new_conv",
            help="Slow: about a minute per pair.",
        )
        name = c6.text_input("Name of the run", placeholder="run-<date>-<time>", key="new_name")
        if not st.button("Start", type="primary", key="new_start", disabled=not models):
            return
        if source == "Upload a file" and upload is None:
            st.warning("Choose a file to upload first.")
            return
        out: Path | None = None
        created = False
        try:
            run_name = cp.new_run_name(name)
            out = root / run_name
            created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            if upload is not None and source == "Upload a file":
                suffix = Path(upload.name).suffix.lower() or ".txt"
                data_path = out / f"input{suffix}"
                data_path.write_bytes(upload.getvalue())
            else:
                data_path = STSB_TEST
            pairs = read_pairs(data_path, limit=int(limit))  # only as far as the pairs the run needs
            bar = st.progress(0.0, text="Loading the model…")

            def report(done: int, total: int, phase: str) -> None:
                label = "pairs explained" if phase == "pairs" else "step checks (pair and layer) done"
                bar.progress(done / max(total, 1), text=f"{done} / {total} {label}")

            with st.spinner("Analyzing…", show_time=True):
                corpus.analyze(
                    backend.get_model(model),
                    pairs,
                    out,
                    limit=int(limit),
                    steps="auto" if steps == "auto" else int(steps),
                    rule=rule,
                    convergence_pairs=int(conv),
                    png=False,
                    progress=False,
                    on_progress=report,
                )
        except PairLensError as exc:
            st.error(literal_markdown(str(exc)))
            return
        finally:
            if out is not None and created:
                cp.remove_unstarted_run(out)  # a run that never started leaves no folder behind
        st.session_state["run_typed"] = run_name
        st.query_params["run"] = run_name
        st.rerun()


def show_figures(summary: dict[str, Any], table: dict[str, list[float]]) -> None:
    figures = corpus_figures(summary, table)
    for metric, column in zip(cp.headline(summary), st.columns(6), strict=True):
        column.metric(metric[0], metric[1], help=metric[2])
    tabs = st.tabs(["Top pairs", "Coverage", "Parts of speech", "Convergence", "Gold"])
    groups = (["top_k_share"], ["coverage"], ["pos_share", "pos_matrix"], ["convergence"], ["gold"])
    for tab, names in zip(tabs, groups, strict=True):
        with tab:
            for name in names:
                st.plotly_chart(figures[name], key=f"fig-{name}", width="stretch", theme=None)


def show_pairs(frame: Any, settings: dict[str, Any]) -> None:
    """The sortable table; the selected pair opens in the explainer."""
    st.subheader("Pairs")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    by = left.selectbox("Sort by", list(cp.SORT_COLUMNS), key="sort_by")
    descending = right.toggle("Largest first", value=True, key="sort_desc")
    table = cp.sort_pairs(frame, by, descending)
    event = st.dataframe(
        table,
        key="pairs_table",
        on_select="rerun",
        selection_mode="single-row",
        hide_index=True,
        column_config=cp.table_column_config(st.column_config),
    )
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    lines = [int(r) for r in table["row"].tolist()]
    if not lines:
        return
    if selected and selected != st.session_state.get("_pairs_selected"):
        st.session_state["open_line"] = lines[selected[0]]  # a new table selection wins over the box
    st.session_state["_pairs_selected"] = selected
    line = st.selectbox("Open pair (line)", lines, key="open_line")
    row = table[table["row"] == line].iloc[0]
    text_a, text_b = (literal_markdown(str(row[k])) for k in ("text_a", "text_b"))
    st.markdown(f"**A:** {text_a}  \n**B:** {text_b}", unsafe_allow_html=False)
    url = cp.explainer_url(st.context.url, cp.explainer_query(settings, str(row["text_a"]), str(row["text_b"])))
    st.link_button("Open in the explainer", url, icon=":material/open_in_new:", type="primary")


def main() -> None:
    backend.keep_computing(())  # this session's page no longer shows a map computing
    st.title("Corpus analysis")
    st.caption(
        "Explain many text pairs at once and see how attributions behave over all of them: how few token "
        "pairs carry most of the score, which parts of speech get the weight, how well the model's scores "
        "agree with human ratings, and how many integration steps each layer needs. Start a small run "
        "below, or open one made earlier."
    )
    root = cp.runs_root()
    with st.expander("Larger runs from a terminal", icon=":material/terminal:"):
        st.markdown(
            "Runs of any size come from the command line and appear in the list below when they are "
            f"written under `{root}`:"
        )
        st.code("python -m attribution analyze PAIRS.csv --out " + str(root / "NAME"), language="bash")
    start_run_form(root)
    run = pick_run(root)
    if run is None:
        return
    run_data = cp.load_run(run)
    settings = run_data.get("settings", {})
    st.caption(cp.settings_sentence(settings))
    summary = cp.load_summary(run)
    if summary is None:
        st.info("This run has not finished (no summary yet): run the same analyze command again to finish it.")
        return
    frame, table = cp.pair_table(cp.load_pairs(run))
    note = cp.plain_note((summary.get("plots") or {}).get("note"))
    if note:
        st.caption(note)
    show_figures(summary, table)
    show_pairs(frame, settings)


try:
    main()
except Exception as exc:
    st.error(literal_markdown(f"The corpus page failed: {type(exc).__name__}: {cut(str(exc), 300)}"))
