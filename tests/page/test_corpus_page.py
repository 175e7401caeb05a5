"""The Corpus page (pages/corpus.py) through Streamlit's AppTest, and its pure helpers.

Most tests open a result folder prepared from hand-made results (no model); one starts a
real two-pair run with all-MiniLM-L6-v2 from the page's form (needs the STS Benchmark).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import streamlit as st
from helpers import ONE, TWO, run_options, shown_text
from streamlit.testing.v1 import AppTest

from attribution.errors import InputError
from attribution.workflows import corpus
from components import corpus_page as cp

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "corpus.py")
TIMEOUT = 300
SETTINGS = corpus.RunSettings(
    model="all-MiniLM-L6-v2",
    data="/data/pairs.jsonl",
    options=run_options(layer=5, mode="approximate", similarity="cos"),
    convergence_steps=[1, 2],
    convergence_layers=[0, 3, 5],
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$PAIRLENS_HOME/runs in a fresh folder, holding the run 'demo' (3 pairs, 1 convergence pair)."""
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    runs = cp.runs_root()
    out = runs / "demo"
    out.mkdir(parents=True)
    corpus.write_json(out / corpus.RUN, {"schema": 1, "settings": SETTINGS.to_dict()})
    records = [
        {"row": 1, "key": "1:a", "gold": 1.0, "result": ONE.to_dict()},
        {"row": 2, "key": "2:b", "gold": 4.0, "result": TWO.to_dict()},
        {
            "row": 3,
            "key": "3:c",
            "gold": 2.5,
            "result": ONE.replace(score=0.9, a=ONE.a.replace(text="A <b>bold</b> dog")).to_dict(),
        },
    ]
    for record in records:
        corpus.append_line(out / corpus.RESULTS, record)
    corpus.append_line(
        out / corpus.CONVERGENCE,
        {"row": 1, "key": "1:a", "layer": 5, "errors": {"midpoint": [[1, 0.2], [2, 0.01]]}},
    )
    corpus.finish(out, None, 5.0, None, SETTINGS.to_dict(), png=False)
    return runs


def open_page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def link_query(at: AppTest) -> dict[str, list[str]]:
    buttons = at.get("link_button")
    assert len(buttons) == 1
    return parse_qs(urlsplit(buttons[0].proto.url).query)


def test_run_from_url_shows_plots_table_and_link(root: Path) -> None:
    at = open_page(run="demo")
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["pairs"] == "3"
    assert metrics["agreement with people"] == "0.500"  # scores 0.2, 0.8, 0.9 against gold 1, 4, 2.5
    assert len(at.get("plotly_chart")) == 6
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 3
    # Sorted by score, largest first: line 3 (0.9), 2 (0.8), 1 (0.2); the first one is offered.
    assert at.selectbox(key="open_line").options == ["3", "2", "1"]
    query = link_query(at)
    assert query["a"] == ["A <b>bold</b> dog"] and query["model"] == ["all-MiniLM-L6-v2"]
    assert (query["layer"], query["steps"], query["rule"], query["mode"]) == (
        ["5"],
        ["auto"],
        ["gauss-legendre"],
        ["approximate"],
    )


def test_sort_and_pick_another_pair(root: Path) -> None:
    at = open_page(run="demo")
    at.selectbox(key="sort_by").set_value("gold").run()
    assert at.selectbox(key="open_line").options == ["2", "3", "1"]
    at.toggle(key="sort_desc").set_value(False).run()
    assert at.selectbox(key="open_line").options == ["1", "3", "2"]
    at.selectbox(key="open_line").set_value(2).run()
    assert_clean(at)
    assert link_query(at)["a"] == ["cats sleep"]


def test_pick_from_the_list(root: Path) -> None:
    at = open_page()
    assert_clean(at)
    assert at.selectbox(key="run_pick").options == ["demo — all-MiniLM-L6-v2, 3 pairs"]
    assert not at.get("plotly_chart")
    at.selectbox(key="run_pick").set_value("demo").run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 6 and at.query_params["run"] == "demo"


def test_folders_outside_the_root_are_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside).mkdir()
    (outside / corpus.RUN).write_text(json.dumps({"settings": SETTINGS.to_dict()}), encoding="utf-8")
    for typed in ("../../elsewhere", str(outside), "/etc"):
        at = open_page()
        at.text_input(key="run_typed").input(typed).run()
        assert [shown_text(e.value) for e in at.error] == [
            f"Only result folders inside {root.resolve()} can be opened here."
        ]
        assert not at.get("plotly_chart")
    (root / "demo-link").symlink_to(outside)
    with pytest.raises(InputError, match="Only result folders inside"):
        cp.resolve_run(root, "demo-link")


def test_unfinished_run_says_how_to_finish(root: Path) -> None:
    (root / "demo" / corpus.SUMMARY).unlink()
    at = open_page(run="demo")
    assert_clean(at)
    assert any("no summary yet" in i.value for i in at.info)


def test_explainer_url_from_the_page_url() -> None:
    query = {"a": "x & y", "b": "z", "model": ["m"]}
    assert cp.explainer_url("http://host:8501/Corpus?run=demo", query) == "http://host:8501/?a=x+%26+y&b=z&model=m"
    assert cp.explainer_url("https://h/base/Corpus/", query).startswith("https://h/base/?a=")
    assert cp.explainer_url(None, query).startswith("/?a=")


def test_new_run_names() -> None:
    assert cp.new_run_name("my-run_1") == "my-run_1"
    assert cp.new_run_name("").startswith("run-")
    with pytest.raises(InputError):
        cp.new_run_name("../escape")


def test_small_run_from_the_form(root: Path, minilm, stsb_dir: Path) -> None:  # type: ignore[no-untyped-def]
    at = open_page()
    at.number_input(key="new_limit").set_value(2)
    at.selectbox(key="new_steps").set_value("8")
    at.text_input(key="new_name").input("from-page")
    at.button(key="new_start").click().run()
    assert_clean(at)
    summary = json.loads((root / "from-page" / corpus.SUMMARY).read_text(encoding="utf-8"))
    assert summary["pairs"] == 2 and summary["run"]["steps"] == 8
    assert summary["run"]["data"] == str((stsb_dir / "sts-test.csv").resolve())
    assert at.query_params["run"] == "from-page"
    assert len(at.get("plotly_chart")) == 6
