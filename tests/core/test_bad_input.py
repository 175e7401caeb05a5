"""Bad input through every surface: the same battery of texts through the API, the CLI and the page.

Each case either gets a correct result (finite matrix of the right shape whose sum is the
attribution sum) or a message that says what to do; never a traceback, a hang or a crash.
One quadrature node keeps the 256-token cases quick: robustness, not accuracy, is tested here.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from helpers import shown_text
from streamlit.testing.v1 import AppTest

from attribution import Attribution, InputError, explain
from attribution.cli import main
from attribution.settings import get_settings
from attribution.workflows.data import read_pairs

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
LONG = ("word " * 4000)[:20_000]  # exactly the default limit of characters

# name -> (text A, text B, what must happen: "ok", "truncated" or the start of the refusal)
CASES: dict[str, tuple[str, str, str]] = {
    "empty": ("", "A sentence.", "Text A is empty"),
    "whitespace only": ("A sentence.", " \t\n\u00a0 ", "Text B is empty"),
    "20,000 characters": (LONG, "A short text.", "truncated"),
    "over the character limit": (LONG + "x", "A short text.", "Text A has 20,001 characters"),
    "punctuation only": ("?!...;:", "!!!", "ok"),
    "control characters": ("tab\there\x00 bell\x07 \x1b[31mred", "line\r\nbreak", "ok"),
    "control characters only": ("\x00\x01\x02\x1b", "A sentence.", "Text A is empty"),
    "zero-width inside words": ("zero\u200bwidth join\u200der", "zero width joiner\ufeff", "ok"),
    "zero-width only": ("\u200b\u200c\u200d\ufeff", "A sentence.", "Text A is empty"),
    "right-to-left": ("שלום עולם \u202eevil\u202c", "مرحبا بالعالم", "ok"),
    "emoji": ("🎸🎶 on stage 🔥", "I love music 🎵👍🏽", "ok"),
    "CJK": ("我喜欢音乐。", "音楽が好きです", "ok"),
    "HTML and JavaScript": (
        "<script>alert(1)</script><a href='javascript:alert(2)'>click</a>",
        "<b>bold</b><br><img src=x onerror=alert(3)>",
        "ok",
    ),
    "Markdown": ("**bold** _it_ [link](https://example.com) `code`", "# Heading\n- item\n\n---", "ok"),
    "identical texts": ("The same sentence twice.", "The same sentence twice.", "ok"),
    "one enormous word": ("a" * 5000, "b" * 3000, "ok"),
}
IDS = list(CASES)


def check_result(res: Attribution, expect: str) -> None:
    """A correct result: finite, shaped by the tokens, summing to the attribution sum."""
    assert res.matrix.shape == (len(res.a.tokens), len(res.b.tokens))
    assert np.isfinite(res.matrix).all()
    assert res.attribution_sum == pytest.approx(float(res.matrix.sum()), rel=1e-9, abs=1e-12)
    assert np.isfinite([res.score, res.target, res.reference_terms]).all()
    assert res.a.truncated == (expect == "truncated")
    if expect == "truncated":
        assert len(res.a.tokens) == 256
        assert any("truncated" in w for w in res.warnings)


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("case", IDS)
def test_api(minilm, case: str) -> None:  # type: ignore[no-untyped-def]
    text_a, text_b, expect = CASES[case]
    if expect in ("ok", "truncated"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = explain(minilm, text_a, text_b, steps=1)
        check_result(res, expect)
        if case == "identical texts":
            np.testing.assert_allclose(res.matrix, res.matrix.T, atol=1e-6)
    else:
        with pytest.raises(InputError) as info:
            explain(minilm, text_a, text_b, steps=1)
        assert str(info.value).startswith(expect)
        assert ":" in str(info.value)  # the message goes on to say what to do


def test_api_repairs_broken_utf8(minilm) -> None:  # type: ignore[no-untyped-def]
    """Lone surrogates (invalid UTF-8 under surrogateescape) become U+FFFD, with a note."""
    with pytest.warns(UserWarning, match="broken UTF-8"):
        res = explain(minilm, "caf\udce9 au lait", "coffee with milk", steps=1)
    assert res.a.text == "caf\ufffd au lait"
    check_result(res, "ok")
    json.dumps(res.to_dict(), ensure_ascii=False).encode("utf-8")  # serialisable as UTF-8


def test_warnings_are_only_the_inputs_own(minilm) -> None:  # type: ignore[no-untyped-def]
    """Library warnings raised during a computation never end up in result.warnings."""

    def noisy(*args: object, **kwargs: object) -> None:
        warnings.warn("some library is deprecated", DeprecationWarning, stacklevel=1)

    minilm.encoder.register_forward_pre_hook(lambda *a: noisy())
    try:
        res = explain(minilm, "A short text.", "Another short text.", steps=1)
    finally:
        minilm.encoder._forward_pre_hooks.clear()
    assert res.warnings == []


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("case", IDS)
def test_cli(minilm, case: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    text_a, text_b, expect = CASES[case]
    code = main(["explain", text_a, text_b, "--steps", "1", "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if expect in ("ok", "truncated"):
        assert code == 0, err
        data = json.loads(out)
        res = Attribution.from_dict(data)
        check_result(res, expect)
        assert ("truncated" in err) == (expect == "truncated")
    else:
        assert code == 2
        assert out == ""
        assert err.count("\n") == 1 and err.startswith(f"pairlens: error: {expect}")


def test_cli_invalid_utf8_arguments(minilm) -> None:  # type: ignore[no-untyped-def]
    """Bytes that are not UTF-8 on the command line: a result with a note, not a crash."""
    done = subprocess.run(
        [sys.executable, "-m", "attribution", "explain", b"caf\xe9 au lait", "coffee", "--steps", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, err
    assert "Traceback" not in err and "broken UTF-8" in err
    data = json.loads(done.stdout.decode("utf-8"))
    assert data["text_a"] == "caf\ufffd au lait" and "caf" in data["tokens_a"]


def test_invalid_utf8_in_data_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Undecodable bytes are replaced and the lines counted; a binary file is an error with a fix."""
    mixed = tmp_path / "mixed.tsv"
    mixed.write_bytes(
        b"sentence1\tsentence2\tscore\n"
        b"A man plays.\tSomeone plays.\t4.0\n"
        b"caf\xe9 au lait\tcoffee\t3.0\n"
        b"\xff\xfe\xfd\tbroken\t1.0\n"
    )
    data = read_pairs(mixed)
    assert [p.text_a for p in data.pairs] == ["A man plays.", "caf\ufffd au lait", "\ufffd\ufffd\ufffd"]
    assert data.invalid_utf8 == 2 and "invalid UTF-8" in data.summary()
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    code = main(["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(binary)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err


# ----------------------------------------------------------------------------- page


@pytest.fixture
def _fresh_caches() -> None:
    """No result from an earlier test: Streamlit's caches, the page's outcomes, the persistent cache."""
    from attribution.service.cache import default_cache
    from components import backend

    st.cache_data.clear()
    backend.registry().clear()
    persistent = default_cache()
    if persistent is not None:
        persistent.clear()


def messages(elements: object) -> str:
    return "\n".join(shown_text(str(e.value)) for e in elements)  # type: ignore[attr-defined]


# A link cannot be refused like a typed text: an over-long text in the URL is cut, with a notice.
PAGE_EXPECT = {"over the character limit": "truncated"}


@pytest.mark.parametrize("case", IDS)
def test_page(minilm, case: str, _fresh_caches: None) -> None:  # type: ignore[no-untyped-def]
    text_a, text_b, expect = CASES[case]
    expect = PAGE_EXPECT.get(case, expect)
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = text_a
    at.query_params["b"] = text_b
    at.query_params["steps"] = "1"
    at.run()
    assert not at.exception, messages(at.exception)
    shown = messages(at.info) + messages(at.error) + messages(at.warning)
    assert "Traceback" not in shown
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    if expect in ("ok", "truncated"):
        assert len(charts) == 1, shown
        assert not at.error, shown
        assert ("truncated" in messages(at.warning)) == (expect == "truncated")
        assert ("cut to the limit" in messages(at.warning)) == (case in PAGE_EXPECT)
    else:
        assert charts == []
        assert expect in shown


# ----------------------------------------------------------------------------- option values (API)

# (keyword, value, the argument name the message must carry)
BAD_OPTIONS: list[tuple[str, object, str]] = [
    ("steps", True, "steps"),
    ("steps", 4.5, "steps"),
    ("steps", np.float64(4.5), "steps"),
    ("steps", Decimal("4.5"), "steps"),
    ("steps", Fraction(9, 2), "steps"),
    ("steps", float("inf"), "steps"),
    ("steps", float("nan"), "steps"),
    ("steps", 0, "steps"),
    ("steps", "many", "steps"),
    ("steps", [8], "steps"),
    ("layer", True, "layer"),
    ("layer", -1, "layer"),
    ("layer", 2.5, "layer"),
    ("layer", "3x", "layer"),
    ("similarity", ["cos"], "similarity"),
    ("similarity", "euclid", "similarity"),
    ("rule", 5, "rule"),
    ("mode", "precise", "mode"),
    ("tolerance", 0, "tolerance"),
    ("tolerance", -1e-3, "tolerance"),
    ("tolerance", float("nan"), "tolerance"),
    ("tolerance", "1e-3", "tolerance"),
    ("tolerance", True, "tolerance"),
    ("memory_budget_mb", 0, "memory_budget_mb"),
    ("memory_budget_mb", -5, "memory_budget_mb"),
    ("memory_budget_mb", float("nan"), "memory_budget_mb"),
    ("direction", "sideways", "direction"),
    ("colour", "red", "colour"),
    ("steps", "²", "steps"),  # a digit to str.isdigit, not to int()
    ("steps", "1" * 5000, "steps"),  # past int()'s 4300-digit limit; never echoed whole
    ("steps", 10**400, "steps"),
    ("layer", "١", "layer"),  # Arabic-Indic one
    ("tolerance", float("inf"), "tolerance"),
    ("memory_budget_mb", float("inf"), "memory_budget_mb"),
    ("memory_budget_mb", "9" * 5000, "memory_budget_mb"),
]


@pytest.mark.parametrize(("name", "value", "needle"), BAD_OPTIONS, ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD_OPTIONS])
def test_every_wrong_option_value_is_an_input_error_naming_it(
    minilm: object, name: str, value: object, needle: str
) -> None:
    with pytest.raises(InputError) as caught:
        explain(minilm, "A cat.", "A dog.", **{name: value})  # type: ignore[arg-type]
    assert needle in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("steps", np.int64(3), 3),
        ("steps", 3.0, 3),
        ("steps", " AUTO ", "auto"),
        ("layer", np.int32(2), 2),
        ("tolerance", np.float32(1e-3), float(np.float32(1e-3))),
        ("tolerance", Decimal("0.001"), 1e-3),
        ("similarity", "cosine", "cos"),
    ],
)
def test_equivalent_values_of_other_types_are_accepted(name: str, value: object, expected: object) -> None:
    from attribution import ExplainOptions

    assert getattr(ExplainOptions.create(**{name: value}), name) == expected


@pytest.mark.parametrize("model", [None, 3, ["all-MiniLM-L6-v2"]])
def test_a_model_that_is_not_one_is_an_input_error(model: object) -> None:
    with pytest.raises(InputError, match="model must be a loaded model"):
        explain(model, "A cat.", "A dog.")  # type: ignore[arg-type]


def test_the_cli_checks_options_before_loading_the_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import attribution.models

    def no_loading(name: str) -> None:
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(attribution.models, "load_model", no_loading)
    assert main(["explain", "A cat.", "A dog.", "--tolerance", "-1"]) == 2
    assert "tolerance" in capsys.readouterr().err


# ----------------------------------------------------------------------------- round 2 (issue 16)
# 1. values echoed from a link are literal text, cut short


def rendered_html(markdown: str) -> str:
    """The Markdown body as CommonMark renders it (Streamlit's renderer adds GFM on top)."""
    markdown_it = pytest.importorskip("markdown_it")
    return str(markdown_it.MarkdownIt("commonmark").render(markdown))


def test_page_notices_show_link_values_as_literal_text(minilm, _fresh_caches: None) -> None:  # type: ignore[no-untyped-def]
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["steps"] = "1"
    at.query_params["rule"] = "[Log in again](http://x)"
    at.query_params["model"] = ["all-MiniLM-L6-v2", "![x](http://x/p.png)"]
    at.run()
    assert not at.exception, messages(at.exception)
    body = "\n".join(str(w.value) for w in at.warning)
    assert "[Log in again](http://x)" in shown_text(body) and "![x](http://x/p.png)" in shown_text(body)
    html = rendered_html(body)
    assert "<a " not in html and "<img" not in html and "[Log in again](http" in html
    # GFM autolinks (http://, www., e-mail) and Streamlit directives need ':', '.', '@' or '[': all escaped
    assert "http://" not in body and "](" not in body and "![" not in body


def test_page_notices_cut_a_huge_link_value(_fresh_caches: None) -> None:
    from components.state import ECHO_CHARS, parse_query

    _, notices = parse_query({"rule": ["r" * 20_000], "top": ["9" * 4000], "model": ["m" * 20_000]}, [])
    assert len(notices) == 4 and all(len(n) < ECHO_CHARS + 120 for n in notices), notices  # + "no usable model"
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = ""  # nothing is computed: the notice is what is tested
    at.query_params["rule"] = "r" * 20_000
    at.run()
    assert not at.exception, messages(at.exception)
    assert "rule=" in messages(at.warning) and len(messages(at.warning)) < 400


# 2. the operator's cap on the work one page request asks for


def test_work_estimate_is_pure_and_grows_with_tokens_steps_and_layers(minilm) -> None:  # type: ignore[no-untyped-def]
    from attribution import ExplainOptions
    from attribution.core.work import estimate_work, limit_work, node_work

    assert node_work((10, 20), layers=2, embedding_dim=384) == (10 * 10 + 20 * 20) * 2
    assert node_work((500,), layers=1, embedding_dim=384) == 384 * 500  # reverse mode: D passes
    assert node_work((5,), layers=0, embedding_dim=384) == 25  # pooling alone still counts
    short = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=8))
    assert (short.tokens_a, short.nodes, short.layers, short.per_node) == (5, 8, 1, 50)
    longer = estimate_work(minilm, "A cat sat on the mat all day.", "A dog.", ExplainOptions(steps=8))
    more_steps = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=64))
    lower_layer = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions(steps=8, layer=0))
    assert short.units < min(longer.units, more_steps.units, lower_layer.units)
    fixed = ExplainOptions(steps=64)
    assert limit_work(more_steps, fixed, more_steps.units) is fixed  # at the limit: allowed as asked
    with pytest.raises(InputError, match="fewer steps, shorter texts or a deeper layer") as info:
        limit_work(more_steps, fixed, short.units)
    assert "8.0 times" in str(info.value) and "64 steps" in str(info.value)
    # steps=auto is charged its first round (8 nodes here) and stops at the most nodes the cap allows
    auto = estimate_work(minilm, "A cat.", "A dog.", ExplainOptions())
    assert auto.nodes == 8
    assert limit_work(auto, ExplainOptions(), 10**9).auto_max_steps is None
    capped = limit_work(auto, ExplainOptions(), 50 * 20)
    assert capped.auto_max_steps == 20
    with pytest.raises(InputError, match="first round of steps=auto"):
        limit_work(auto, ExplainOptions(), 50 * 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = explain(minilm, "A cat.", "A dog.", capped.replace(tolerance=1e-12), pos=False)
    # the adaptive rule refines in steps of several nodes: it stops at the last refinement within the cap
    assert 8 < res.steps <= 20 and not res.converged
    assert res.step_cap == 20  # recorded, so a front end can tell its cap from PAIRLENS_MAX_STEPS
    from components.backend import capped_by_page_work

    assert capped_by_page_work(res)
    # stopped by PAIRLENS_MAX_STEPS itself (a cap at the global maximum): not the page's cap, whatever the steps
    assert not capped_by_page_work(dataclasses.replace(res, step_cap=get_settings().max_steps, steps=12))
    assert not capped_by_page_work(dataclasses.replace(res, converged=True))
    fixed = explain(minilm, "A cat.", "A dog.", steps=4, pos=False)
    assert fixed.step_cap is None and not capped_by_page_work(fixed)


@pytest.mark.parametrize("how", ["link", "typed", "auto"])
def test_page_refuses_work_over_the_operator_cap(
    minilm, how: str, monkeypatch: pytest.MonkeyPatch, _fresh_caches: None
) -> None:  # type: ignore[no-untyped-def]
    from attribution.core import engine

    calls: list[Any] = []
    real = engine.explain

    def counted(model: Any, text_a: str, text_b: str, options: Any, **kwargs: Any) -> Attribution:
        calls.append(options)
        return real(model, text_a, text_b, options, **kwargs)

    monkeypatch.setattr(engine, "explain", counted)
    monkeypatch.setenv("PAIRLENS_MAX_PAGE_WORK", "1000")  # 2 x 5 tokens at the last layer: 50 per node, 20 nodes
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["steps"] = {"link": "64", "typed": "1", "auto": "auto"}[how]
    at.run()
    assert not at.exception, messages(at.exception)
    if how == "auto":  # allowed, told to stop at the 20 nodes the cap allows
        assert [o.step_cap for o in calls] == [20] and not at.error and at.get("plotly_chart")
        return
    if how == "typed":
        assert len(calls) == 1 and not at.error  # 1 node: allowed
        at.selectbox(key="steps").set_value("256")
        next(button for button in at.button if button.label == "Explain").click().run()
    errors = messages(at.error)
    assert "too large for this server" in errors and "fewer steps, shorter texts or a deeper layer" in errors
    assert len(calls) == (0 if how == "link" else 1)  # refused before the engine is reached
    assert not at.get("plotly_chart")


# 3. a model folder whose weights do not match its config


@pytest.fixture(scope="module")
def mismatched_models(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> dict[str, Path]:
    """A tiny BERT, one whose config.json claims 4 layers (2 in its weights), one missing a tensor."""
    import shutil

    from safetensors.torch import load_file, save_file
    from tiny_models import build_tiny_model

    base = tmp_path_factory.mktemp("mismatched")
    good = build_tiny_model(base / "good", "bert", minilm_dir)
    more = base / "more-layers"
    shutil.copytree(good, more)
    config = json.loads((more / "config.json").read_text(encoding="utf-8"))
    assert config["num_hidden_layers"] == 2
    config["num_hidden_layers"] = 4
    (more / "config.json").write_text(json.dumps(config), encoding="utf-8")
    missing = base / "missing-tensor"
    shutil.copytree(good, missing)
    weights = load_file(missing / "model.safetensors")
    del weights["encoder.layer.1.attention.self.query.weight"]
    save_file(weights, missing / "model.safetensors", metadata={"format": "pt"})
    extra = base / "extra-tensor"
    shutil.copytree(good, extra)
    weights = load_file(extra / "model.safetensors")
    weights["encoder.layer.5.output.dense.weight"] = weights["encoder.layer.1.output.dense.weight"].clone()
    save_file(weights, extra / "model.safetensors", metadata={"format": "pt"})
    return {"good": good, "more layers": more, "missing tensor": missing, "extra tensor": extra}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("more layers", "32 weights are missing from its files (e.g. encoder.layer.2."),
        ("missing tensor", "1 weight is missing from its files (e.g. encoder.layer.1.attention.self.query.weight)"),
        ("extra tensor", "1 weight is in its files that the model has no place for"),
    ],
)
def test_model_weights_that_do_not_match_the_config_are_a_model_error(
    mismatched_models: dict[str, Path], case: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from attribution import ModelError
    from attribution.models.registry import _load_uncached

    assert _load_uncached("good", str(mismatched_models["good"])).num_layers == 2
    with pytest.raises(ModelError, match=r"does not match its config\.json") as info:
        _load_uncached(case, str(mismatched_models[case]))
    assert needle in str(info.value) and "re-save or re-download" in str(info.value)
    code = main(["explain", "A cat.", "A dog.", "--model", str(mismatched_models[case]), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err


def test_page_refuses_a_custom_model_with_missing_weights(
    mismatched_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, _fresh_caches: None
) -> None:
    monkeypatch.setenv("PAIRLENS_ALLOW_CUSTOM_MODELS", "1")
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = "A cat."
    at.query_params["b"] = "A dog."
    at.query_params["model"] = str(mismatched_models["more layers"])
    at.run()
    assert not at.exception, messages(at.exception)
    assert "does not match its config.json" in messages(at.error) and not at.get("plotly_chart")


# 4-8. corpus runs: threads, data files, the --out folder


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """`analyze --threads` sets torch's thread count for the process: restored after each test."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def write_jsonl(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_analyze_caps_a_huge_thread_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    import torch

    from attribution.workflows.corpus import check_threads

    cores = len(os.sched_getaffinity(0))
    assert check_threads(100_000) == cores and check_threads(1) == 1
    with pytest.raises(InputError, match="--threads must be at least 1"):
        check_threads(0)
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    # stops at the --out check, after the threads were set (no model is loaded)
    code = main(["analyze", "--data", str(data), "--out", str(tmp_path / "file"), "--threads", "100000"])
    assert torch.get_num_threads() <= cores
    err = capsys.readouterr().err
    assert code == 2 and "--threads 100000 is more than" in err and "is a file" in err


DEEP = '{"text_a": ' + "[" * 100_000 + "]" * 100_000 + ', "text_b": "x"}'
SURROGATE = '{"text_a": "caf\\udce9 au lait", "text_b": "coffee with milk", "score": 3}'


def test_jsonl_deep_nesting_and_lone_surrogates_are_counted_by_line(tmp_path: Path) -> None:
    good = json.dumps({"text_a": "A cat.", "text_b": "A dog.", "score": 1})
    data = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", [good, DEEP, SURROGATE]))
    assert [p.row for p in data.pairs] == [1, 3]
    assert data.pairs[1].text_a == "caf\ufffd au lait"  # repaired as the engine does
    assert (data.malformed, data.malformed_examples) == (1, ["line 2: JSON nested too deeply"])
    assert (data.invalid_utf8, data.invalid_utf8_lines) == (1, [3])
    assert "line 2: JSON nested too deeply" in data.summary() and "(lines 3)" in data.summary()
    with pytest.raises(InputError, match="line 1: JSON nested too deeply"):
        read_pairs(write_jsonl(tmp_path / "deep.jsonl", [DEEP]))


def test_cli_analyze_survives_deep_nesting_and_lone_surrogates(
    minilm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "pairs.jsonl", [DEEP, SURROGATE])
    out = tmp_path / "run"
    fast = ["--steps", "1", "--convergence-pairs", "0", "--no-png", "--no-progress", "--threads", "1"]
    code = main(["analyze", "--data", str(data), "--out", str(out), *fast])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err and "line 1: JSON nested too deeply" in captured.out
    record = json.loads((out / "attributions.jsonl").read_text(encoding="utf-8"))
    assert record["row"] == 2 and record["result"]["text_a"] == "caf\ufffd au lait"


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


def test_only_unstarted_unlocked_run_folders_are_removed(tmp_path: Path) -> None:
    from attribution.workflows.corpus import RUN, output_folder
    from components.corpus_page import remove_unstarted_run

    started = tmp_path / "started"
    started.mkdir()
    (started / RUN).write_text("{}", encoding="utf-8")
    assert not remove_unstarted_run(started) and started.is_dir()
    with output_folder(tmp_path / "running") as running:  # another session's run, before its run.json
        assert not remove_unstarted_run(running) and running.is_dir()
    assert remove_unstarted_run(running) and not running.exists()


HOLD_LOCK = """
import sys, time
from attribution.workflows.corpus import output_folder
with output_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_analyze_refuses_a_folder_in_use_and_a_killed_run_leaves_no_lock(tmp_path: Path) -> None:
    import os
    import signal

    from attribution.workflows.corpus import LOCK, output_folder

    out = tmp_path / "run"
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = subprocess.run(
            [sys.executable, "-m", "attribution", "analyze", "--data", str(data), "--out", str(out), "--no-progress"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"in use by another analyze run (process {holder.pid})" in second.stderr
        with pytest.raises(InputError, match="in use by another analyze run"), output_folder(out):
            pass
        assert not (out / "run.json").exists()  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with output_folder(out) as folder:  # the killed run's lock went with its process
        assert (folder / LOCK).read_text() == str(os.getpid())


def test_atomic_writes_use_temporary_files_of_their_own(tmp_path: Path) -> None:
    from attribution.workflows.corpus import replacing

    target = tmp_path / "pairs.csv"
    with replacing(target) as first, replacing(target) as second:  # two writers at once (formerly one .tmp)
        first.write("first\n")
        second.write("second\n")
    assert target.read_text() == "first\n"  # the last to finish wins; neither fails
    with pytest.raises(RuntimeError), replacing(target) as broken:
        broken.write("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "first\n" and [p.name for p in tmp_path.iterdir()] == ["pairs.csv"]


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make paths unwritable (chmod; for root, whom chmod does not stop, the immutable attribute)."""
    import os
    import shutil

    done: list[tuple[Path, int]] = []

    def make(path: Path) -> None:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        done.append((path, mode))
        root = os.access(path, os.W_OK)
        if root and (shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0):
            pytest.skip("cannot make a path read-only here (root without chattr)")

    yield make
    for path, mode in reversed(done):
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(mode)


@pytest.mark.parametrize("what", ["folder", "attributions.jsonl"])
def test_analyze_into_a_read_only_folder_or_file_is_one_line(
    tmp_path: Path, what: str, read_only: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", [json.dumps({"text_a": "A cat.", "text_b": "A dog."})])
    out = tmp_path / "run"
    out.mkdir()
    if what == "folder":
        read_only(out)
    else:
        (out / "attributions.jsonl").write_text("", encoding="utf-8")
        read_only(out / "attributions.jsonl")
    code = main(["analyze", "--data", str(data), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("pairlens: error: Cannot write to") and "choose another --out folder" in err


ROWS_200K = 200_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "pairs.jsonl"
    row = json.dumps({"text_a": "A man plays a guitar.", "text_b": "Someone plays music.", "score": 3.5})
    path.write_text((row + "\n") * ROWS_200K, encoding="utf-8")
    return path


def test_limit_reads_only_the_head_of_the_file(big_file: Path) -> None:
    head = read_pairs(big_file, limit=5)
    assert len(head.pairs) == 5 and head.lines_read == 5 and head.complete is False
    assert "the first 5 only: read up to line 5" in head.summary()
    whole = read_pairs(big_file)
    assert len(whole.pairs) == ROWS_200K and whole.lines_read == ROWS_200K and whole.complete
    with pytest.raises(InputError, match="--limit must be a whole number of at least 1"):
        read_pairs(big_file, limit=0)


def test_cli_limit_reads_only_the_head(
    big_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from attribution.workflows.corpus import cli as corpus_cli

    read: list[Any] = []
    real = corpus_cli.read_pairs
    monkeypatch.setattr(corpus_cli, "read_pairs", lambda *a, **k: read.append(real(*a, **k)) or read[-1])
    (tmp_path / "file").write_text("", encoding="utf-8")  # the run stops at --out, after reading
    code = main(["analyze", "--data", str(big_file), "--out", str(tmp_path / "file"), "--limit", "5"])
    assert code == 2 and "is a file" in capsys.readouterr().err
    assert [r.lines_read for r in read] == [5]


# 11. share links past a safe length


def test_share_links_past_a_safe_length_are_refused_with_a_json_download(minilm, _fresh_caches: None) -> None:  # type: ignore[no-untyped-def]
    from components.state import MAX_LINK_CHARS, link_problem, share_url

    assert link_problem(share_url(None, {"a": "x" * 100})) is None
    assert "longer ones are refused" in (link_problem(share_url(None, {"a": "é" * MAX_LINK_CHARS})) or "")
    long_text = ("Ünïcödé wörds " * 2000)[:20_000]  # about 90 kB once percent-encoded
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["a"] = long_text
    at.query_params["b"] = "A short text."
    at.query_params["steps"] = "1"
    at.run()
    assert not at.exception, messages(at.exception)
    assert len(at.get("plotly_chart")) == 1  # the view itself works
    shown = messages(at.info)
    assert "more than a link can safely carry" in shown and "download it below" in shown
    assert not [c for c in at.code if "?a=" in str(c.value)]  # no link offered
    assert any(str(b.proto.label).startswith("Result of") for b in at.get("download_button"))
