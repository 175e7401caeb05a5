"""Pair readers: STS Benchmark, header CSV/TSV, JSONL; malformed rows counted, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribution.cli import main as cli_main
from attribution.errors import InputError
from attribution.workflows.data import read_pairs

STSB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stsbenchmark"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _sts_row(score: str, a: str, b: str, extra: str = "") -> str:
    return f"main-captions\tMSRvid\t2012test\t0001\t{score}\t{a}\t{b}{extra}\n"


def test_sts_rows_extra_missing_bad_blank(tmp_path: Path) -> None:
    content = (
        _sts_row("5.000", "A plane is taking off.", "An air plane is taking off.")
        + _sts_row("3.800", 'He said "hi.', "He greeted.", extra="\tsource-a\tsource-b")  # extra columns, a stray quote
        + "main-captions\tMSRvid\t2012test\t0002\t1.0\tonly one sentence\n"  # missing column
        + "\n"
        + _sts_row("abc", "Bad score.", "Bad score indeed.")
        + _sts_row("2.0", "   ", "Empty first sentence.")
        + _sts_row("nan", "NaN score.", "Still NaN.")
        + "   \n"
        + _sts_row("0.4", "Last.", "Row.")
    )
    result = read_pairs(_write(tmp_path, "sts.csv", content))
    assert result.format == "stsb"
    assert [(p.text_a, p.text_b, p.gold, p.row) for p in result.pairs] == [
        ("A plane is taking off.", "An air plane is taking off.", 5.0, 1),
        ('He said "hi.', "He greeted.", 3.8, 2),
        ("Last.", "Row.", 0.4, 9),
    ]
    assert result.malformed == 4
    assert result.blank == 2
    assert result.malformed_examples == [
        "line 3: expected at least 7 tab-separated columns, found 6",
        "line 5: the score 'abc' is not a number",
        "line 6: sentence 1 is empty",
        "line 7: the score 'nan' is not a finite number",
    ]
    assert result.has_gold
    assert "4 malformed rows skipped" in result.summary()


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    content = _sts_row("4.0", "Caf\u00e9 open.", "The caf\u00e9 is open.").encode() + (
        b"g\tf\ty\t1\t2.5\tBad \xff\xfe bytes.\tFine text.\n"
    )
    result = read_pairs(_write(tmp_path, "bad.csv", content))
    assert len(result.pairs) == 2
    assert result.pairs[0].text_a == "Caf\u00e9 open."
    assert result.pairs[1].text_a == "Bad \ufffd\ufffd bytes."
    assert result.invalid_utf8 == 1
    assert result.invalid_utf8_lines == [2]
    assert "invalid UTF-8" in result.summary()


def test_header_csv_with_quotes_crlf_and_bom(tmp_path: Path) -> None:
    content = (
        "\ufeffid,sentence1,sentence2,score\r\n"
        '1,"A man, a plan.","A canal: ""Panama"".",4.5\r\n'
        "2,Missing score,Here,\r\n"
        "3,Too,few\r\n"
        "\r\n"
        "4,Fine,Also fine,0\r\n"
    )
    result = read_pairs(_write(tmp_path, "pairs.csv", content))
    assert result.format == "csv"
    assert [(p.text_a, p.text_b, p.gold, p.row) for p in result.pairs] == [
        ("A man, a plan.", 'A canal: "Panama".', 4.5, 2),
        ("Fine", "Also fine", 0.0, 6),
    ]
    assert result.malformed == 2
    assert result.malformed_examples == ["line 3: the score is empty", "line 4: expected 4 columns, found 3"]
    assert result.blank == 1


def test_header_tsv_without_score_keeps_quotes(tmp_path: Path) -> None:
    content = 'Sentence1\tSentence2\n"Quoted\tplain\nA\t\nB\tC\n'
    result = read_pairs(_write(tmp_path, "pairs.tsv", content))
    assert result.format == "tsv"
    assert [(p.text_a, p.text_b, p.gold) for p in result.pairs] == [('"Quoted', "plain", None), ("B", "C", None)]
    assert result.malformed == 1
    assert result.malformed_examples == ["line 3: sentence 2 is empty"]
    assert not result.has_gold


def test_score_column_aliases_and_other_delimiters(tmp_path: Path) -> None:
    result = read_pairs(_write(tmp_path, "semi.txt", "sentence1;sentence2;label\nA;B;1.5\n"))
    assert result.format == "semicolon"
    assert result.pairs[0].gold == 1.5


def test_jsonl(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text_a": "One.", "text_b": "Two.", "score": 3}),
        "{not json",
        json.dumps({"sentence1": "Three.", "sentence2": "Four."}),
        json.dumps(["a", "list"]),
        json.dumps({"text_a": "Five.", "text_b": 6}),
        json.dumps({"text_a": "Seven.", "text_b": "Eight.", "score": "x"}),
        json.dumps({"text_a": "Nine.", "text_b": "Ten.", "score": True}),
    ]
    result = read_pairs(_write(tmp_path, "pairs.jsonl", "\n".join(lines) + "\n\n"))
    assert result.format == "jsonl"
    assert [(p.text_a, p.text_b, p.gold, p.row) for p in result.pairs] == [
        ("One.", "Two.", 3.0, 1),
        ("Three.", "Four.", None, 3),
    ]
    assert result.malformed == 5
    assert result.malformed_examples[0].startswith("line 2: not valid JSON")
    assert result.malformed_examples[1:] == [
        "line 4: not a JSON object",
        "line 5: needs string fields text_a and text_b",
        "line 6: the score 'x' is not a number",
        "line 7: the score True is not a number",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("blank.csv", "\n  \n", "is empty"),
        ("prose.txt", "Just some prose without structure.\n", "Cannot tell the format"),
        ("allbad.csv", "a\tb\tc\n\td\te\n", "No usable text pairs"),
        ("header-only.csv", "sentence1,sentence2,score\n", "No usable text pairs"),
    ],
)
def test_no_usable_rows_says_what_is_expected(tmp_path: Path, name: str, content: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        read_pairs(_write(tmp_path, name, content))
    assert "sentence1, sentence2" in str(info.value)  # the expected formats are named


def test_all_malformed_lists_examples(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"2 malformed rows: line 1: .*line 2: "):
        read_pairs(_write(tmp_path, "bad.csv", _sts_row("x", "a", "b") + _sts_row("1", "", "b")))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_pairs(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is not a file"):
        read_pairs(tmp_path)


def test_evaluate_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_scores = _write(tmp_path, "noscore.csv", "sentence1,sentence2\nA,B\nC,D\n")
    cases = [
        ["--model", "all-MiniLM-L6-v2", "--data", str(tmp_path / "missing.csv")],
        ["--model", "no-such-model-anywhere", "--data", str(no_scores)],
        ["--model", "all-MiniLM-L6-v2", "--data", str(no_scores)],  # no gold: refused before loading the model
    ]
    for argv in cases:
        assert cli_main(["evaluate", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("pairlens: error: ")
        assert captured.err.count("\n") == 1
        assert "Traceback" not in captured.err


@pytest.mark.skipif(not STSB.is_dir(), reason=f"STS Benchmark not found at {STSB} (../shared/data/stsbenchmark)")
def test_real_sts_benchmark_files() -> None:
    expected = {"train": 5749, "dev": 1500, "test": 1379}
    for split, count in expected.items():
        result = read_pairs(STSB / f"sts-{split}.csv")
        assert result.format == "stsb"
        assert len(result.pairs) == count
        assert result.malformed == 0
        assert result.invalid_utf8 == 0
        assert all(p.gold is not None and 0.0 <= p.gold <= 5.0 for p in result.pairs)
        assert all(p.text_a and p.text_b and "\t" not in p.text_a + p.text_b for p in result.pairs)
    first = read_pairs(STSB / "sts-train.csv").pairs[0]
    assert (first.text_a, first.text_b, first.gold) == ("A plane is taking off.", "An air plane is taking off.", 5.0)
