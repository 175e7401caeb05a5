"""The margin analysis over query/candidates data (issue 25): which query tokens and POS carry the margin
of the best positive over the top-scoring negative, checked against separate explain() calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attribution import InputError, explain
from attribution.cli import main
from attribution.workflows.corpus.ranking import margin_report, read_examples

LINES = [
    {"query": "How do cats spend the day?", "positives": ["Cats sleep for most of the day."],
     "negatives": ["Dogs bark at the mailman.", "The stock market fell sharply."]},
    {"query": "Where is the Eiffel Tower?", "positive": "The Eiffel Tower stands in Paris.",
     "negatives": ["Towers are tall buildings.", "Paris has many bakeries."]},
]  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in LINES) + "\n", encoding="utf-8")
    return path


def test_margins_equal_separate_explain_calls(minilm, data: Path) -> None:  # type: ignore[no-untyped-def]
    report = margin_report(minilm, read_examples(data))
    assert len(report.queries) == 2 and not report.skipped
    first = report.queries[0]
    embeddings = minilm.embed([LINES[0]["query"], *LINES[0]["negatives"]])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    top_negative = LINES[0]["negatives"][int(np.argmax(unit[1:] @ unit[0]))]
    assert first.negative == top_negative and first.positive == LINES[0]["positives"][0]
    positive = explain(minilm, first.query, first.positive, role_a="query", role_b="document")
    negative = explain(minilm, first.query, first.negative, role_a="query", role_b="document")
    rows = positive.matrix.sum(axis=1) - negative.matrix.sum(axis=1)
    shown = [i for i, hidden in enumerate(positive.a.special_or_prompt()) if not hidden]
    assert np.allclose(first.shares, rows[shown], atol=1e-6)
    assert first.attribution_margin == pytest.approx(float(rows.sum()), abs=1e-6)
    assert first.pos == [positive.a.pos[i] for i in shown]  # type: ignore[index]
    # the set's totals are the sums of the per-query shares
    total_cats = sum(s for q in report.queries for t, s in zip(q.tokens, q.shares, strict=True) if t.lower() == "cats")
    assert next(g for g in report.by_token if g.label == "cats").total == pytest.approx(total_cats)
    assert sum(g.total for g in report.by_pos) == pytest.approx(sum(sum(q.shares) for q in report.queries))
    assert report.won == sum(q.positive_score > q.negative_score for q in report.queries)


def test_cli_prints_the_report(minilm, data: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["margins", str(data), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["queries"] == 2 and payload["by_token"] and payload["by_pos"]
    assert main(["margins", str(data), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "queries 1;" in out and "by POS of the query token:" in out


def test_bad_data_is_refused_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q", "positives": ["a"]}\n', encoding="utf-8")
    with pytest.raises(
        InputError, match=r'Line 1 of bad\.jsonl needs at least one text in "positives" and in "negatives"'
    ):
        read_examples(bad)
    bad.write_text("not json\n", encoding="utf-8")
    assert main(["margins", str(bad)]) == 2
    assert "Line 1 of bad.jsonl is not JSON" in capsys.readouterr().err
    assert main(["margins", str(tmp_path / "missing.jsonl")]) == 2
    bad.write_bytes(b'{"query": "caf\xe9", "positives": ["a"], "negatives": ["b"]}\n')  # Latin-1, not UTF-8
    assert main(["margins", str(bad)]) == 2
    assert "bad.jsonl is not UTF-8 text: save it as UTF-8." in capsys.readouterr().err


def test_too_many_queries_are_refused_while_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from attribution.workflows.corpus import ranking

    monkeypatch.setattr(ranking, "MAX_QUERIES", 2)
    many = tmp_path / "many.jsonl"
    line = json.dumps({"query": "q", "positives": ["a"], "negatives": ["b"]})
    many.write_text(f"{line}\n" * 3 + "not json\n", encoding="utf-8")  # refused before the bad 4th line
    with pytest.raises(InputError, match=r"More than 2 queries: use --limit or split the file\."):
        read_examples(many)
    assert len(read_examples(many, limit=2)) == 2


def test_a_refused_query_is_skipped_and_named(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dup.jsonl"
    path.write_text(
        json.dumps({"query": "cats", "positives": ["a cat"], "negatives": ["a  cat"]}) + "\n", encoding="utf-8"
    )
    report = margin_report(minilm, read_examples(path))
    assert not report.queries and "same text" in report.skipped[0]
