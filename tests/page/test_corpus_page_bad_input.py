"""Bad uploads on the Corpus page (AppTest): a file with no usable row or a model that fails to load leaves
no run folder behind and reads the upload only as far as needed; a lone surrogate does not stop a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from helpers import DEEP, SURROGATE, messages
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def corpus_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path / "home"))
    st.cache_data.clear()
    from components.corpus_page import runs_root

    return runs_root()


def start_upload(content: bytes, name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "corpus.py"), default_timeout=300).run()
    at.radio(key="new_source").set_value("Upload a file").run()
    at.file_uploader(key="new_upload").set_value(("pairs.jsonl", content, "application/json"))
    at.text_input(key="new_name").input(name)
    at.selectbox(key="new_steps").set_value("8")
    at.number_input(key="new_limit").set_value(1)
    return at.button(key="new_start").click().run()


def test_corpus_page_upload_with_no_usable_row_leaves_no_folder(corpus_root: Path) -> None:
    at = start_upload((DEEP + "\n").encode(), "deep")
    assert not at.exception, messages(at.exception)
    assert "line 1: JSON nested too deeply" in messages(at.error)
    assert not (corpus_root / "deep").exists()


def test_corpus_page_failed_start_leaves_no_folder(corpus_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attribution import ModelError
    from components import backend

    def broken(name: str) -> None:
        raise ModelError("the model folder is corrupt: reinstall it.")

    from attribution.workflows import data as data_module

    read: list[Any] = []
    real = data_module.read_pairs
    monkeypatch.setattr(data_module, "read_pairs", lambda *a, **k: read.append(real(*a, **k)) or read[-1])
    monkeypatch.setattr(backend, "get_model", broken)
    at = start_upload((SURROGATE + "\n" + DEEP + "\n").encode() * 1000, "broken-model")
    assert not at.exception, messages(at.exception)
    assert "the model folder is corrupt" in messages(at.error)
    assert not (corpus_root / "broken-model").exists()
    assert [r.lines_read for r in read] == [1]  # the upload is read only as far as the pairs asked for


def test_corpus_page_runs_a_file_with_a_lone_surrogate(minilm, corpus_root: Path) -> None:  # type: ignore[no-untyped-def]
    at = start_upload((DEEP + "\n" + SURROGATE + "\n").encode(), "surrogate")
    assert not at.exception, messages(at.exception)
    assert not at.error, messages(at.error)
    summary = json.loads((corpus_root / "surrogate" / "summary.json").read_text(encoding="utf-8"))
    assert summary["pairs"] == 1
