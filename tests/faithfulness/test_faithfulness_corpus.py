"""Faithfulness over a corpus: per-pair rows equal the one-pair report; the table summarises them per method
and layer; the command writes both."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attribution import load_model
from attribution.cli import main
from attribution.core.options import ExplainOptions
from attribution.faithfulness import faithfulness_report
from attribution.faithfulness.corpus import corpus_faithfulness, sample_indices

PAIRS = [
    ("A man is playing a guitar.", "Someone plays an instrument."),
    ("The cat sleeps on the warm windowsill.", "A cat is napping."),
    ("Stocks fell sharply after the announcement.", "Markets dropped."),
    ("Don't forget the meeting at ten.", "The meeting is important."),
]


@pytest.fixture(scope="module")
def tiny(tiny_models: Any) -> Any:
    return load_model(str(tiny_models["bert"]))


def test_rows_equal_the_pair_report_and_the_table_summarises_them(tiny: Any) -> None:
    options = ExplainOptions(steps=2)
    done = corpus_faithfulness(tiny, PAIRS[:3], options, layers=[1, 2], draws=2, seed=5, indices=[0, 1, 2])
    assert len(done.rows) == 3 * 2 * 2  # pairs x layers x methods
    report = faithfulness_report(tiny, *PAIRS[1], options.replace(layer=2), draws=2, seed=5 + 1)
    row = next(r for r in done.rows if r.pair == 1 and r.layer == 2 and r.method == "hessian-x-input")
    assert row.deletion_area == pytest.approx(report.curves.curve("hessian-x-input", "deletion").area)
    assert row.deletion_gain == pytest.approx(report.curves.between("hessian-x-input"))
    assert row.spearman == pytest.approx(report.sweeps["hessian-x-input"].spearman)
    table = done.table()
    assert [(t.method, t.layer) for t in table] == [
        ("integrated-jacobians", 1), ("integrated-jacobians", 2), ("hessian-x-input", 1), ("hessian-x-input", 2),
    ]  # fmt: skip
    for t in table:
        rows = [r for r in done.rows if r.method == t.method and r.layer == t.layer]
        assert t.pairs == 3
        assert t.deletion_area_mean == pytest.approx(np.mean([r.deletion_area for r in rows]))
        assert t.faster_than_random == pytest.approx(np.mean([r.deletion_gain > 0 for r in rows]))
        rho = [r.spearman for r in rows if math.isfinite(r.spearman)]
        assert t.spearman_mean == pytest.approx(np.mean(rho))


def test_sample_is_seeded_and_spread() -> None:
    assert sample_indices(10, 20, 0) == list(range(10))
    picked = sample_indices(1000, 5, 3)
    assert picked == sorted(picked) and len(set(picked)) == 5 and picked == sample_indices(1000, 5, 3)


def test_command_writes_pairs_and_table(tiny_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("sentence1\tsentence2\n" + "".join(f"{a}\t{b}\n" for a, b in PAIRS), encoding="utf-8")
    out = tmp_path / "faith"
    argv = ["faithfulness-corpus", str(data), "--model", str(tiny_models["bert"]), "--sample", "2", "--layers", "1",
            "--steps", "2", "--draws", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| integrated Jacobians | 1 | 2 |" in printed and "Hessian × input (second method" in printed
    with (out / "table.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["method"], r["layer"], r["pairs"]) for r in table] == [
        ("integrated-jacobians", "1", "2"), ("hessian-x-input", "1", "2"),
    ]  # fmt: skip
    with (out / "pairs.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4
    assert (out / "table.md").read_text().startswith("| method | layer |")
    assert main(["faithfulness-corpus", str(data), "--sample", "0", "--out", str(out)]) == 2
    assert "--sample must be" in capsys.readouterr().err
    assert main(["faithfulness-corpus", str(tmp_path / "missing.tsv"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
