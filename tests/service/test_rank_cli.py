"""`pairlens rank` (issue 25): candidates from JSON, CSV and plain lines (file or stdin), --top, --json,
--scores-only, and bad input as one line with exit code 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attribution.cli import main
from attribution.workflows.rank import parse_candidates

QUERY = "How do cats spend the day?"
CANDIDATES = ["Dogs bark at the mailman.", "Cats sleep for most of the day.", "The stock market fell sharply."]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_formats_are_read_alike(tmp_path: Path) -> None:
    as_json = json.dumps(CANDIDATES)
    as_objects = json.dumps([{"text": t, "id": i} for i, t in enumerate(CANDIDATES)])
    as_csv = "id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(CANDIDATES))
    as_tsv = "text\n" + "\n".join(CANDIDATES) + "\n"
    as_lines = "\n".join(CANDIDATES) + "\n\n"
    assert parse_candidates(as_json) == CANDIDATES
    assert parse_candidates(as_objects) == CANDIDATES
    assert parse_candidates(as_csv, name="c.csv") == CANDIDATES
    assert parse_candidates(as_tsv, name="c.tsv") == CANDIDATES
    assert parse_candidates(as_lines) == CANDIDATES
    assert parse_candidates("passage\nfirst\nsecond\n", "csv", column="passage") == ["first", "second"]
    from attribution import InputError

    with pytest.raises(InputError, match=r"no column 'text' \(its columns: 'id', 'body'\)"):
        parse_candidates("id,body\n1,x\n", name="c.csv")
    with pytest.raises(InputError, match="not valid JSON"):
        parse_candidates("[1, ", "json")
    with pytest.raises(InputError, match="Candidate 1 in the JSON is not a text"):
        parse_candidates('["a", 3]')


def test_rank_json_from_a_csv_file(minilm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "candidates.csv"
    path.write_text("text\n" + "\n".join(CANDIDATES) + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "rank", QUERY, "--candidates", str(path), "--json", "--top", "2")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["candidates"] == 3 and len(payload["entries"]) == 2
    first, second = payload["entries"]
    assert first["text"] == CANDIDATES[1] and first["rank"] == 1 and first["score"] > second["score"]
    assert len(first["attribution"]["matrix"]) == len(first["attribution"]["tokens_a"])
    assert "pos_a" not in first["attribution"]
    assert payload["contrast"]["higher"]["rank"] == 1 and payload["contrast"]["favour_higher"]


def test_rank_text_from_stdin(minilm, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(CANDIDATES)))
    code, out, err = run_cli(capsys, "rank", QUERY, "--candidates", "-", "--steps", "4")
    assert code == 0, err
    lines = out.splitlines()
    ranked = [line for line in lines if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(ranked) == 3 and CANDIDATES[1] in ranked[0]
    assert any(line.startswith("why #1 over #2") for line in lines)
    assert "strongest pair:" in out


def test_scores_only(minilm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CANDIDATES), encoding="utf-8")
    code, out, err = run_cli(capsys, "rank", QUERY, "--candidates", str(path), "--scores-only", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert [e["attribution"] for e in payload["entries"]] == [None, None, None]
    assert payload["entries"][0]["index"] == 1


@pytest.mark.parametrize(
    ("lines", "extra", "message"),
    [
        ("", [], "candidate list is empty"),
        ("a cat\na cat\n", [], "Candidates 0 and 1 are the same text"),
        ("a cat\ndogs\n", ["--prompt-name-a", "search"], "no prompt named 'search'"),
        ("\n".join(f"text {i}" for i in range(101)), [], "add --top K"),
        ("a cat\n", ["--top", "0"], "--top must be 1 or more"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, lines: str, extra: list[str], message: str) -> None:
    path = tmp_path / "c.txt"
    path.write_text(lines, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "attribution", "rank", QUERY, "--candidates", str(path), *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("pairlens")]) == 1


def test_missing_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "rank", QUERY, "--candidates", "/no/such/file.json")
    assert code == 2 and "No candidates file at '/no/such/file.json'" in err
