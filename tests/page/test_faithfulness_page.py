"""The page's faithfulness check through AppTest: the user opens it, runs it, changes a control, runs again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.testing.v1 import AppTest

from components import backend

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 300


def charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [f["layout"].get("title", {}).get("text", "") for f in charts(at)]


def test_run_the_check_shows_both_methods_and_the_curves() -> None:
    st.cache_data.clear()
    backend.registry().clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["a"] = "A man is playing a guitar on stage."
    at.query_params["b"] = "Someone performs music with an instrument."
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Faithfulness" in e.label for e in at.expander)
    assert len(charts(at)) == 1  # only the map until the user asks
    at.segmented_control(key="fa_op").set_value("drop")
    at.number_input(key="fa_draws").set_value(2)
    at.button(key="fa_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shown = titles(at)
    sweeps = [t for t in shown if "Spearman" in t]
    assert len(sweeps) == 2 and "integrated Jacobians" in sweeps[0] and "2nd method" in sweeps[1]
    curves = next(f for f in charts(at) if "Deletion and insertion" in f["layout"]["title"]["text"])
    names = {trace.get("name") for trace in curves["data"]}
    assert {"random order (mean of 2)", "integrated Jacobians order", "Hessian × input (2nd method) order"} <= names
    bars = next(f for f in charts(at) if "Spearman" in f["layout"]["title"]["text"])
    labels = bars["data"][0]["y"]
    assert any("guitar" in label for label in labels) and not any("[CLS]" in label for label in labels)
    assert "dropped" in bars["layout"]["title"]["subtitle"]["text"]
    table = next(d.value for d in at.dataframe if "deletion area" in d.value.columns)
    assert list(table["order"])[-1] == "random (mean of 2 draws)"
    # a changed control: the old report is not passed off as the new one
    at.segmented_control(key="fa_level").set_value("word").run()
    assert not [t for t in titles(at) if "Spearman" in t]
    assert any("inputs changed" in c.value for c in at.caption)
    at.button(key="fa_run").click().run()
    bars = next(f for f in charts(at) if "Spearman" in f["layout"]["title"]["text"])
    assert "each word" in bars["layout"]["title"]["subtitle"]["text"]
