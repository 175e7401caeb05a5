"""The command line: JSON contract, readable summary, bad input (exit 2, one line, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attribution.cli import main

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."
CONTRACT = {
    "model",
    "layer",
    "steps",
    "rule",
    "mode",
    "similarity",
    "tokens_a",
    "tokens_b",
    "matrix",
    "score",
    "target",
    "attribution_sum",
    "integration_error",
    "reference_terms",
    "seconds",
}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_contract(minilm, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(capsys, "explain", A, B, "--json", "--steps", "4")
    assert code == 0
    data = json.loads(out)
    assert data.keys() >= CONTRACT
    assert (data["model"], data["steps"], data["mode"], data["similarity"]) == (
        "all-MiniLM-L6-v2",
        4,
        "approximate",
        "cos",
    )
    assert len(data["matrix"]) == len(data["tokens_a"]) and len(data["matrix"][0]) == len(data["tokens_b"])
    assert "pos_a" not in data
    assert data["attribution_sum"] == pytest.approx(sum(map(sum, data["matrix"])))


def test_json_with_pos_words_and_top(minilm, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(capsys, "explain", A, B, "--json", "--pos", "--top", "3")
    data = json.loads(out)
    assert code == 0 and len(data["top_pairs"]) == 3
    assert len(data["pos_a"]) == len(data["tokens_a"]) and data["pos_a"][0] == "SPECIAL"
    assert "guitar" in data["words_a"] and len(data["word_index_b"]) == len(data["tokens_b"])
    code, out, _ = run_cli(capsys, "explain", A, B, "--json", "--words")
    words = json.loads(out)
    assert words["level"] == "word" and "[CLS]" not in words["tokens_a"]


def test_readable_summary(minilm, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(capsys, "explain", A, B, "--top", "2")
    assert code == 0
    assert "score" in out and "reference" in out and "guitar" in out


def test_models_lists_installed_state(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models")
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line[0].isspace()}
    assert code == 0 and rows["all-MiniLM-L6-v2"].split()[1:] == ["builtin", "installed"]  # not "not installed"
    assert "all-mpnet-base-v2" in rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "", B], "empty"),
        (["explain", A, B, "--layer", "9"], "layer"),
        (["explain", A, B, "--steps", "0"], "steps"),
        (["explain", A, B, "--steps", "lots"], "steps"),
        (["explain", A, B, "--rule", "simpson"], "invalid choice"),
        (["explain", A, B, "--model", "no-such-model"], "Unknown model"),
        (["explain", A, B, "--model", "/tmp"], "not a sentence-transformers model folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "attribution", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("pairlens")]) == 1
