"""Bad input through every surface: the same battery of texts through the API, the CLI and the page.

Each case either gets a correct result (finite matrix of the right shape whose sum is the
attribution sum) or a message that says what to do; never a traceback, a hang or a crash.
One quadrature node keeps the 256-token cases quick: robustness, not accuracy, is tested here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import messages
from streamlit.testing.v1 import AppTest

from attribution import Attribution, InputError, explain
from attribution.cli import main
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
