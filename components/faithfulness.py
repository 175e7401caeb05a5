"""The page's faithfulness check: an expander under the results that runs attribution.faithfulness on one model's
pair and shows each method's sweep side by side, the deletion / insertion curves and their numbers.

The check runs on request (a button: it explains the pair by both methods and scores a few hundred edited
pairs), in this process, with the page's work cap; with a remote backend (PAIRLENS_BACKEND_URL) it says to
use that server's POST /faithfulness instead. The last report is kept in the session for the inputs it was
computed for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from attribution.core.options import ExplainOptions
from attribution.core.work import within_work
from attribution.errors import PairLensError
from attribution.faithfulness.curves import DEFAULT_DRAWS, RANDOM
from attribution.faithfulness.methods import METHODS, method_label
from attribution.faithfulness.report import FaithfulnessReport, faithfulness_report
from attribution.result import Attribution
from attribution.settings import get_settings
from attribution.viz.faithfulness import build_curves, build_sweep_bars
from attribution.viz.heatmap import short_model_name
from attribution.viz.layout import Style
from components import backend
from components.backend import get_model

REPORT = "fa_report"  # session key: (inputs key, FaithfulnessReport)
MAX_PAGE_DRAWS = 20
OP_LABELS = {"mask": "mask (pad token)", "drop": "drop"}
LEVEL_LABELS = {"token": "tokens", "word": "words"}
ORDER_LABELS = {"unit": "by row / column totals", "pair": "by cells (word pairs)"}


def compute_report(
    model_name: str, text_a: str, text_b: str, options: ExplainOptions, *, op: str, level: str, order: str, draws: int
) -> FaithfulnessReport:
    """Both methods' report for the pair, within the page's work cap (PAIRLENS_MAX_PAGE_WORK)."""
    model = get_model(model_name)
    settings = get_settings()
    limits = settings.limits
    options = within_work(model, text_a, text_b, options, limits, settings.max_page_work)
    return faithfulness_report(
        model, text_a, text_b, options, methods=METHODS, op=op, level=level, order=order, draws=draws, limits=limits
    )


def summary_rows(report: FaithfulnessReport) -> list[dict[str, Any]]:
    """One row per method and one for random order: rank agreement and curve areas."""
    curves = report.curves
    rows: list[dict[str, Any]] = []
    for name, sweep in report.sweeps.items():
        rows.append(
            {
                "order": method_label(name),
                "Spearman ρ (map vs sweep)": None if not math.isfinite(sweep.spearman) else round(sweep.spearman, 3),
                "deletion area": round(curves.curve(name, "deletion").area, 4),
                "insertion area": round(curves.curve(name, "insertion").area, 4),
                "deletion gain over random": round(curves.between(name, "deletion"), 4),
            }
        )
    rows.append(
        {
            "order": f"random (mean of {curves.draws} draws)",
            "Spearman ρ (map vs sweep)": None,
            "deletion area": round(curves.curve(RANDOM, "deletion").area, 4),
            "insertion area": round(curves.curve(RANDOM, "insertion").area, 4),
            "deletion gain over random": 0.0,
        }
    )
    return rows


def render_faithfulness(
    names: Sequence[str],
    results: dict[str, Attribution],
    text_a: str,
    text_b: str,
    options_of: Callable[[str], ExplainOptions],
    style: Style,
) -> None:
    """The expander: controls, the Run button, and the last report for these inputs."""
    shown = [n for n in names if n in results]
    if not shown:
        return
    stored = st.session_state.get(REPORT)
    with st.expander("Faithfulness: does the map say what the model needs?", expanded=stored is not None):
        st.caption(
            "Each token (or word) is removed in turn and the score re-computed, beside what the map gives it; then "
            "tokens are removed in the map's order, in random order and in the order of a second method "
            "(Hessian × input: one node at a = 1, a cheap baseline, not integrated Jacobians). Masking puts the pad "
            "token there, which the model still reads: see docs/guides/faithfulness.md for the limits."
        )
        row = st.container(horizontal=True, gap="medium", vertical_alignment="bottom")
        with row:
            name = shown[0]
            if len(shown) > 1:
                name = st.selectbox("Model", shown, key="fa_model", format_func=short_model_name, width=240)
            op = st.segmented_control(
                "Remove by", list(OP_LABELS), key="fa_op", default="mask", format_func=OP_LABELS.__getitem__
            )
            level = st.segmented_control(
                "Units", list(LEVEL_LABELS), key="fa_level", default="token", format_func=LEVEL_LABELS.__getitem__
            )
            order = st.segmented_control(
                "Curve order", list(ORDER_LABELS), key="fa_order", default="unit", format_func=ORDER_LABELS.__getitem__
            )
            draws = st.number_input(
                "Random orders", min_value=1, max_value=MAX_PAGE_DRAWS, value=DEFAULT_DRAWS, step=1, key="fa_draws",
                width=130,
            )  # fmt: skip
            clicked = st.button("Run the check", key="fa_run", type="primary")
        op, level, order = op or "mask", level or "token", order or "unit"
        options = options_of(name)
        key = (name, text_a, text_b, json.dumps(options.to_dict(), sort_keys=True), op, level, order, int(draws))
        if clicked:
            if backend.is_remote():
                st.info(
                    "This page computes through a remote PairLens server: run the check there with "
                    "POST /faithfulness (or `pairlens faithfulness`)."
                )
                return
            try:
                with st.spinner("Explaining by both methods and scoring every edit…"):
                    report = compute_report(
                        name, text_a, text_b, options, op=op, level=level, order=order, draws=int(draws)
                    )
            except PairLensError as exc:
                st.error(str(exc))
                return
            st.session_state[REPORT] = (key, report)
            stored = (key, report)
        if stored is None:
            return
        if stored[0] != key:
            st.caption("The inputs changed since the last check: press Run the check again.")
            return
        show_report(stored[1], style)


def show_report(report: FaithfulnessReport, style: Style) -> None:
    """Both methods' sweeps side by side, the curves, the numbers and a JSON download."""
    columns = st.columns(len(report.sweeps), gap="medium")
    for index, (column, sweep) in enumerate(zip(columns, report.sweeps.values(), strict=True)):
        with column:
            st.plotly_chart(
                build_sweep_bars(sweep, style=Style(dark=style.dark)),
                key=f"fa-sweep-{index}",
                config={"displaylogo": False},
            )
    st.plotly_chart(
        build_curves(report.curves, style=Style(dark=style.dark)), key="fa-curves", config={"displaylogo": False}
    )
    st.dataframe(summary_rows(report), hide_index=True, key="fa-table")
    first = next(iter(report.sweeps.values()))
    st.caption("≠: " + first.disagreement_rule + ".")
    st.download_button(
        "Report (JSON)",
        json.dumps(report.to_dict(), ensure_ascii=False, indent=1),
        file_name="pairlens-faithfulness.json",
        mime="application/json",
        key="fa-download",
    )
