"""Limits the operator sets through the environment, and what the page lets users load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from helpers import shown_text
from streamlit.testing.v1 import AppTest

from attribution import InputError, ModelError, explain
from attribution.cli import main
from attribution.settings import get_settings
from components.state import quoted

ROOT = Path(__file__).resolve().parents[2]
A, B = "A man is playing a guitar on stage.", "Someone performs music with an instrument."


def test_defaults_are_documented_values(monkeypatch: pytest.MonkeyPatch) -> None:
    names = (
        "MAX_TOKENS", "MAX_STEPS", "MEMORY_BUDGET_MB", "RESULT_CACHE", "MAX_TEXT_CHARS", "ALLOW_CUSTOM_MODELS",
        "MAX_PAGE_WORK",
    )  # fmt: skip
    for name in names:
        monkeypatch.delenv(f"PAIRLENS_{name}", raising=False)
    s = get_settings()
    assert (s.max_tokens, s.max_steps, s.memory_budget_mb, s.result_cache, s.max_text_chars) == (
        256,
        1024,
        2048,
        64,
        20_000,
    )
    assert s.allow_custom_models is False
    assert s.max_page_work == 1_500_000  # two 256-token texts at the default layer with steps=auto: 1,048,576


def test_max_steps_refuses_more_and_caps_auto(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAIRLENS_MAX_STEPS", "4")
    with pytest.raises(InputError, match="from 1 to 4"):
        explain(minilm, A, B, steps=8, pos=False)
    with pytest.warns(UserWarning, match="cap of 4 nodes"):
        res = explain(minilm, A, B, layer=0, tolerance=1e-9, pos=False)
    assert res.steps == 4 and not res.converged


def test_max_text_chars_refuses_with_the_limit(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAIRLENS_MAX_TEXT_CHARS", "20")
    with pytest.raises(InputError, match="limit of 20"):
        explain(minilm, A, B, steps=1, pos=False)


def test_max_tokens_truncates_models_loaded_under_it(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from attribution.models.registry import _load_uncached

    monkeypatch.setenv("PAIRLENS_MAX_TOKENS", "8")
    model = _load_uncached("tiny-bert", str(tiny_models["bert"]))  # not the shared cache
    assert model.max_tokens == 8
    res = explain(model, "one two three four five six seven eight nine ten", "short text", steps=2, pos=False)
    assert len(res.a.tokens) == 8 and res.a.truncated and not res.b.truncated


def test_memory_budget_only_changes_chunking(minilm, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A budget of 1 MiB runs one token and one node per chunk; the numbers stay the same (generic path)."""
    from attribution.core import jacobian, paths
    from attribution.core.engine import NodeEvaluator

    monkeypatch.setattr(NodeEvaluator, "use_structured", False)  # the structured path chunks by its own rule

    chunk_sizes: list[int] = []
    real_vmap = jacobian.vmap

    def counting_vmap(func: Any, *args: Any, **kwargs: Any) -> Any:
        batched = real_vmap(func, *args, **kwargs)

        def run(tangents: Any) -> Any:
            chunk_sizes.append(int(tangents.shape[0]) * int(tangents.shape[1]))  # tokens x nodes
            return batched(tangents)

        return run

    monkeypatch.setattr(jacobian, "vmap", counting_vmap)
    monkeypatch.setattr(paths, "vmap", counting_vmap)  # the first round's batched calls (texts of equal length)
    full = explain(minilm, A, B, steps=6, pos=False)
    full_chunks, chunk_sizes[:] = list(chunk_sizes), []
    tiny = explain(minilm, A, B, steps=6, pos=False, memory_budget_mb=1)
    tokens = len(full.a) + len(full.b)
    assert len(full_chunks) == 2 and sum(full_chunks) == 6 * tokens  # one chunk per text
    assert chunk_sizes == [1] * (6 * tokens)  # one token at one node per chunk
    np.testing.assert_allclose(tiny.matrix, full.matrix, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("PAIRLENS_MAX_STEPS", "lots", "not a whole number"),
        ("PAIRLENS_MAX_TOKENS", "2", "out of range"),
        ("PAIRLENS_MEMORY_BUDGET_MB", "-5", "out of range"),
    ],
)
def test_bad_settings_stop_the_cli_with_one_line(
    name: str, value: str, needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["explain", A, B]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and needle in err


def test_result_cache_size_comes_from_the_environment() -> None:
    code = "from components import backend; print(backend.registry().max_outcomes)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PAIRLENS_RESULT_CACHE": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == "3", done.stderr[-500:]


def test_remote_code_is_never_trusted(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Even for a folder whose config asks for custom code, trust_remote_code stays False."""
    import sentence_transformers

    from attribution.models import registry as models

    seen: list[dict[str, Any]] = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    models._load_uncached("tiny", str(tiny_models["bert"]))
    with pytest.raises(ModelError):
        models._load_uncached("remote", "someone/model-with-custom-code")
    assert seen and all(kw.get("trust_remote_code") is False for kw in seen)


# ----------------------------------------------------------------------------- custom models on the page


def run_page(**params: str) -> AppTest:
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_custom_models_are_off_by_default(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAIRLENS_ALLOW_CUSTOM_MODELS", raising=False)
    folder = str(tiny_models["bert"])
    at = run_page(model=folder, steps="2")
    assert not at.exception
    shown = shown_text("\n".join(str(w.value) for w in at.warning))
    assert f"Model {quoted(folder)} is not available here; ignored." in shown  # cut to 40 characters
    assert at.multiselect(key="models").value == ["all-MiniLM-L6-v2"]
    assert at.multiselect(key="models").proto.accept_new_options is False


def test_operator_can_allow_custom_models(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRLENS_ALLOW_CUSTOM_MODELS", "1")
    folder = str(tiny_models["bert"])
    at = run_page(model=folder, steps="2")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="models").value == [folder]
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert len(figures) == 1 and "[CLS]" in figures[0]["layout"]["yaxis"]["ticktext"]
