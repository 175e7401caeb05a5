"""Corpus analysis: summary maths on hand-made matrices, resumable runs, the analyze CLI.

Real runs use the packaged all-MiniLM-L6-v2 with few pairs and small fixed steps; engine
calls are counted by wrapping `attribution.core.many.explain_outcomes`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import ONE, TWO, hand_result, run_options

from attribution.cli import main
from attribution.core import engine, many
from attribution.core.options import ExplainOptions
from attribution.errors import InputError
from attribution.workflows import corpus
from attribution.workflows.corpus_summary import (
    ConvergenceAccumulator,
    CorpusAccumulator,
    pair_stats,
    topk_shares,
)

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman is cutting an onion.", 4.2),
    ("The cat sleeps on the sofa.", "Stocks fell sharply today.", 0.0),
    ("Two dogs run in the park.", "Dogs are running outside.", 3.6),
    ("A child reads a book.", "A kid is reading.", 3.9),
]
FAST = {"steps": 4, "convergence_pairs": 1, "convergence_steps": (1, 2), "png": False, "progress": False}


def test_pair_stats_by_hand() -> None:
    s1 = pair_stats(ONE, 1, "1:x", gold=1.0)
    assert s1.topk_share[:6] == pytest.approx([0.5, 0.8, 0.9, 0.95, 1.0, 1.0])
    assert s1.topk_share[-1] == pytest.approx(1.0)
    assert s1.cells_needed == [1, 2, 3]
    assert s1.cells_fraction == pytest.approx([1 / 9, 2 / 9, 3 / 9])
    # 1 cell touches dogs and puppies: 2 of 6 tokens, 2 of 4 non-special ones; 2-3 cells touch all 4 words.
    assert s1.tokens_share == pytest.approx([2 / 6, 4 / 6, 4 / 6])
    assert s1.content_tokens_share == pytest.approx([0.5, 1.0, 1.0])
    # k random cells of 3x3 miss a given row with probability C(6, k) / C(9, k): 6/9, 15/36, 20/84.
    expected = [2 * 3 * (1 - miss) / 6 for miss in (6 / 9, 15 / 36, 20 / 84)]
    assert s1.random_tokens_share == pytest.approx(expected)
    s2 = pair_stats(TWO, 2, "2:y", gold=4.0)
    assert s2.topk_share[:3] == pytest.approx([4 / 3, 1.0, 1.0])
    assert s2.cells_needed == [1, 1, 1]
    assert s2.tokens_share == pytest.approx([2 / 3] * 3)
    assert (s2.cells, s2.tokens) == (2, 3)
    assert s2.random_tokens_share == pytest.approx([(2 * 0.5 + 1 * 1.0) / 3] * 3)  # 1 of 2 cells: each row 1/2


def test_topk_shares_agree_with_top_pairs() -> None:
    rng = np.random.default_rng(0)
    result = hand_result(rng.normal(size=(4, 5)).tolist(), list("abcd"), list("vwxyz"), ["NOUN"] * 4, ["VERB"] * 5)
    expected = [p.cumulative_share for p in result.top_pairs(20)]
    assert topk_shares(result) == pytest.approx(expected)


def test_corpus_accumulator_by_hand() -> None:
    acc = CorpusAccumulator(gold_scale=5.0)
    acc.add(ONE, 1, "1:x", gold=1.0)
    acc.add(TWO, 2, "2:y", gold=4.0)
    acc.add_failure(3, "too long")
    s = acc.summary()
    assert (s["pairs"], s["failed"]) == (2, 1)
    top = s["top_k_share"]
    assert top["mean"][0] == pytest.approx((0.5 + 4 / 3) / 2)
    assert top["q1"][0] == pytest.approx(0.5 + 0.25 * (4 / 3 - 0.5))
    assert top["median"][1] == pytest.approx(0.9)  # (0.8 + 1.0) / 2
    cov = s["coverage"]
    assert cov["cells"]["median"] == pytest.approx([1.0, 1.5, 2.0])
    assert cov["cells_fraction"]["mean"] == pytest.approx([(k / 9 + 1 / 2) / 2 for k in (1, 2, 3)])
    assert cov["tokens_share"]["mean"][2] == pytest.approx((4 / 6 + 2 / 3) / 2)
    assert cov["unreached"] == [0, 0, 0]

    # POS pooled over both pairs: each cell half to its row's tag, half to its column's tag.
    pos = s["pos"]
    assert pos["labels"] == ["NOUN", "VERB", "SPECIAL"]
    total = 1.0 + 0.3
    noun = 0.5 * (0.6 + 0.55) + 0.5 * (0.4 + 0.3)
    verb = 0.5 * (0.35 + 0.4) + 0.5 * (-0.1 + 0.0)
    special = 0.5 * (0.05 + 0.05)
    assert pos["attribution_share"] == pytest.approx([noun / total, verb / total, special / total])
    assert sum(pos["attribution_share"]) == pytest.approx(1.0)
    assert pos["tokens"] == [4, 3, 2]
    assert pos["token_share"] == pytest.approx([4 / 9, 3 / 9, 2 / 9])
    assert pos["lift"][0] == pytest.approx((noun / total) / (4 / 9))
    matrix = pos["matrix"]
    assert matrix["labels_a"] == ["NOUN", "VERB", "SPECIAL"] and matrix["labels_b"] == ["NOUN", "VERB", "SPECIAL"]
    share = dict(zip(["NOUN", "VERB", "SPECIAL"], matrix["share"], strict=True))
    assert share["NOUN"] == pytest.approx([(0.5 + 0.4) / total, 0.1 / total, 0.0])
    assert share["VERB"] == pytest.approx([(0.05 - 0.1) / total, 0.3 / total, 0.0])
    assert share["SPECIAL"] == pytest.approx([0.0, 0.0, 0.05 / total])
    assert sum(map(sum, matrix["cell_share"])) == pytest.approx(1.0)
    assert matrix["cell_share"][0][0] == pytest.approx((1 + 1) / (9 + 2))  # dogs-puppies, cats-cats

    corr = s["correlation"]
    assert corr["gold"] and corr["n"] == 2
    assert corr["score_vs_gold"]["spearman"] == pytest.approx(1.0)  # scores 0.2, 0.8 vs gold 1, 4
    assert corr["sum_vs_gold"]["spearman"] == pytest.approx(-1.0)  # sums 1.0, 0.3
    assert s["accuracy"] is None  # needs 4 pairs with gold


def test_accuracy_split_orders_by_prediction_error() -> None:
    acc = CorpusAccumulator(gold_scale=5.0)
    for row, (score, gold) in enumerate([(0.2, 1.0), (0.9, 1.0), (0.5, 2.5), (0.1, 5.0)], start=1):
        acc.add(ONE.replace(score=score), row, f"{row}:k", gold)
    acc.add(TWO.replace(score=0.6), 5, "5:k", 3.0)  # error 0 -> the most accurate pair
    out = acc.accuracy()
    assert out is not None
    # errors |score - gold/5|: 0.0, 0.7, 0.0, 0.9, and 0.0 for pair 5; a quarter of 5 pairs is 1 pair.
    assert out["most_accurate"]["pairs"] == out["least_accurate"]["pairs"] == 1
    assert out["least_accurate"]["prediction_error"]["median"] == pytest.approx(0.9)
    assert out["prediction_error"]["max"] == pytest.approx(0.9)


def test_convergence_accumulator() -> None:
    acc = ConvergenceAccumulator()
    acc.add(0, "midpoint", [(1, 0.5), (2, -0.01), (4, 1e-4)])
    acc.add(0, "midpoint", [(1, 0.3), (2, 0.03), (4, 3e-4)])
    acc.add(0, "midpoint", [(1, 0.1), (2, 0.02), (4, 2e-4)])
    curve = acc.summary()["curves"][0]
    assert (curve["layer"], curve["rule"], curve["steps"]) == (0, "midpoint", [1, 2, 4])
    assert curve["median"] == pytest.approx([0.3, 0.02, 2e-4])  # |errors|
    assert curve["steps_to_1e-3"] == 4


def test_convergence_errors_match_explain(minilm) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = PAIRS[0]
    options = ExplainOptions(layer=3, mode="approximate", similarity="cos")
    curves = corpus.convergence_errors(minilm, a, b, options, ("gauss-legendre", "midpoint"), (1, 2))
    for rule, curve in curves.items():
        for n, error in curve:
            expected = engine.explain(minilm, a, b, layer=3, steps=n, rule=rule, pos=False).relative_error
            assert error == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- runs


def write_pairs(path: Path, pairs: list[tuple[str, str, float]] = PAIRS) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for a, b, gold in pairs:
            handle.write(json.dumps({"text_a": a, "text_b": b, "score": gold}) + "\n")
    return path


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Texts of every pair that reaches the engine (the real engine runs underneath; no result cache):
    the corpus hands its pairs to explain_many in batches."""
    monkeypatch.setenv("PAIRLENS_CACHE_MB", "0")  # the cache's own tests: tests/service/test_cache.py
    calls: list[tuple[str, str]] = []
    real = many.explain_outcomes

    def counted(model: Any, pairs: Any, *args: Any, **kwargs: Any) -> Any:
        calls.extend((a, b) for a, b in pairs)
        return real(model, pairs, *args, **kwargs)

    monkeypatch.setattr(many, "explain_outcomes", counted)
    return calls


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_run_writes_every_file_then_resumes(
    minilm,
    tmp_path: Path,
    engine_calls: list[tuple[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    report = corpus.analyze(minilm, data, out, limit=3, **FAST)  # type: ignore[arg-type]
    assert (report.computed, report.skipped, len(engine_calls)) == (3, 0, 3)
    for name in ("run.json", "attributions.jsonl", "convergence.jsonl", "pairs.csv", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    records = lines(out / "attributions.jsonl")
    assert [r["row"] for r in records] == [1, 2, 3]
    assert records[0]["gold"] == 4.8 and records[0]["result"]["text_a"] == PAIRS[0][0]
    assert records[0]["result"]["steps"] == 4 and records[0]["result"]["pos_a"][0] == "SPECIAL"
    assert len(lines(out / "convergence.jsonl")) == 3  # 1 pair x layers 0, 3, 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 3 and summary["run"]["model"] == "all-MiniLM-L6-v2"
    assert "NOUN" in summary["pos"]["labels"]
    assert summary["convergence"]["layers"] == [0, 3, 5] and summary["convergence"]["pairs"] == 1
    assert summary["plots"]["png"] == [] and "--no-png" in summary["plots"]["note"]
    assert summary["correlation"]["gold"] is True and summary["gold_scale"] == 4.8  # largest |gold| of the file
    assert "plotly" in (out / "report.html").read_text(encoding="utf-8")[:100_000].lower()
    with (out / "pairs.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in rows] == [1, 2, 3]
    assert float(rows[0]["score"]) == pytest.approx(records[0]["result"]["score"])

    engine_calls.clear()
    again = corpus.analyze(minilm, data, out, limit=3, **FAST)  # type: ignore[arg-type]
    assert (again.computed, again.skipped, engine_calls) == (0, 3, [])
    more = corpus.analyze(minilm, data, out, **FAST)  # type: ignore[arg-type]
    assert (more.computed, more.skipped) == (2, 3)
    assert engine_calls == [(a, b) for a, b, _ in PAIRS[3:]]
    assert len(lines(out / "attributions.jsonl")) == 5
    assert json.loads((out / "summary.json").read_text())["pairs"] == 5


def test_truncated_last_line_is_dropped_and_recomputed(
    minilm,
    tmp_path: Path,
    engine_calls: list[tuple[str, str]],  # type: ignore[no-untyped-def]
) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:2])
    out = tmp_path / "run"
    fast = {**FAST, "convergence_pairs": 0}
    corpus.analyze(minilm, data, out, **fast)  # type: ignore[arg-type]
    path = out / "attributions.jsonl"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 40])  # the second line loses its end, as after a kill mid-write
    engine_calls.clear()
    report = corpus.analyze(minilm, data, out, **fast)  # type: ignore[arg-type]
    assert report.dropped_tail and (report.computed, report.skipped) == (1, 1)
    assert engine_calls == [PAIRS[1][:2]]
    records = lines(path)
    assert [r["row"] for r in records] == [1, 2] and all("result" in r for r in records)
    assert json.loads((out / "summary.json").read_text())["bad_lines"] == 0


def test_refused_pair_is_recorded_not_retried(
    minilm,
    tmp_path: Path,
    engine_calls: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("PAIRLENS_MAX_TEXT_CHARS", "27")  # PAIRS[0] fits, PAIRS[1]'s text A (28 chars) does not
    data = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:2])
    out = tmp_path / "run"
    fast = {**FAST, "convergence_pairs": 0}
    report = corpus.analyze(minilm, data, out, **fast)  # type: ignore[arg-type]
    assert (report.computed, report.failed) == (1, 1)
    refused = lines(out / "attributions.jsonl")[1]
    assert refused["row"] == 2 and "result" not in refused and "27" in refused["error"]
    summary = report.summary
    assert (summary["pairs"], summary["failed"]) == (1, 1) and summary["failures"][0].startswith("line 2: ")
    engine_calls.clear()
    again = corpus.analyze(minilm, data, out, **fast)  # type: ignore[arg-type]
    assert (again.skipped, engine_calls) == (2, [])


def test_other_settings_are_refused(minilm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:1])
    out = tmp_path / "run"
    corpus.analyze(minilm, data, out, **{**FAST, "convergence_pairs": 0})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="new --out folder") as info:
        corpus.analyze(minilm, data, out, **{**FAST, "convergence_pairs": 0, "steps": 2})  # type: ignore[arg-type]
    assert "steps 4 -> 2" in str(info.value)


def test_text_bs_own_prompt_is_part_of_a_runs_settings(tmp_path: Path) -> None:
    """Per-text prompts (--role-b and the like): a resume with another prompt for text B is refused; runs with
    one prompt for both texts, and run.json files written before per-text prompts, resume as before."""
    from attribution.workflows.corpus.settings import RunSettings, check_settings
    from attribution.workflows.corpus.store import RUN

    def settings(**changes: Any) -> RunSettings:
        return RunSettings("m", "d", run_options(prompt="query: ", **changes), [1], [0])

    shared, per_text = settings(), settings(prompt_name_b="document", prompt_b="passage: ")
    assert (shared.to_dict()["prompt_b"], per_text.to_dict()["prompt_b"]) == (None, "passage: ")
    (tmp_path / RUN).write_text(json.dumps({"settings": per_text.to_dict()}), encoding="utf-8")
    check_settings(tmp_path, per_text)
    with pytest.raises(InputError, match="prompt_b 'passage: ' -> 'query: '"):
        check_settings(tmp_path, settings(prompt_name_b="query", prompt_b="query: "))
    older = {k: v for k, v in shared.to_dict().items() if not k.endswith("_b")}
    (tmp_path / RUN).write_text(json.dumps({"settings": older}), encoding="utf-8")
    check_settings(tmp_path, shared)


def test_png_failure_is_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import plotly.io as pio

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no Chrome found\nmore detail")

    monkeypatch.setattr(pio, "write_images", broken)
    (tmp_path / "attributions.jsonl").write_text(
        json.dumps({"row": 1, "key": "1:x", "gold": 1.0, "result": ONE.to_dict()}) + "\n", encoding="utf-8"
    )
    summary = corpus.finish(tmp_path, None, 5.0, None, {"model": "hand"}, png=True)
    assert summary["plots"]["png"] == []
    assert summary["plots"]["note"] == "PNG export skipped: RuntimeError: no Chrome found"
    assert (tmp_path / "report.html").is_file() and summary["pairs"] == 1


def test_summary_skips_broken_and_foreign_lines(tmp_path: Path) -> None:
    good = {"row": 1, "key": "1:x", "gold": 1.0, "result": ONE.to_dict()}
    text = "\n".join(
        [
            json.dumps(good),
            "{not json",
            json.dumps({**good, "key": "9:other"}),
            json.dumps({"row": 2, "key": "2:y", "gold": None, "error": "Text A is empty."}),
            json.dumps(good),  # a duplicate key counts once
        ]
    )
    (tmp_path / "attributions.jsonl").write_text(text + "\n", encoding="utf-8")
    summary = corpus.summarize(tmp_path, {"1:x", "2:y"}, 5.0)
    assert (summary["pairs"], summary["failed"], summary["bad_lines"], summary["records_outside_selection"]) == (
        1,
        1,
        1,
        1,
    )
    assert summary["failures"] == ["line 2: Text A is empty."]


# ----------------------------------------------------------------------------- CLI


def test_cli_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("just one column\nand another\n", encoding="utf-8")
    code = main(["analyze", "--data", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("pairlens: error: Cannot tell the format") and err.count("\n") == 1
    code = main(["analyze", "--data", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "run")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_run_and_refused_rerun(minilm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    data = write_pairs(tmp_path / "pairs.jsonl", PAIRS[:2])
    out = tmp_path / "run"
    base = ["analyze", "--data", str(data), "--out", str(out), "--steps", "2", "--convergence-pairs", "0"]
    threads = ["--threads", str(torch.get_num_threads()), "--no-png", "--no-progress"]
    assert main([*base, *threads]) == 0
    printed = capsys.readouterr().out
    assert "2 selected: 2 computed" in printed and "summary.json" in printed
    assert main([*base, *threads, "--layer", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer 5 -> 2" in err and "new --out" in err


def test_stsb_gold_correlation(minilm, stsb_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = corpus.analyze(
        minilm, stsb_dir / "sts-test.csv", tmp_path / "run", limit=4, **{**FAST, "convergence_pairs": 0}
    )  # type: ignore[arg-type]
    summary = report.summary
    assert summary["gold_scale"] == 5.0 and summary["correlation"]["n"] == 4
    assert summary["run"]["data_format"] == "STS Benchmark"
    spearman = summary["correlation"]["score_vs_gold"]["spearman"]
    assert spearman is not None and -1.0 <= spearman <= 1.0
    assert summary["accuracy"]["most_accurate"]["pairs"] == 1
    assert all(math.isfinite(x) for x in summary["top_k_share"]["mean"])
