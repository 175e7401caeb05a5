"""Exact models: batched embeddings, a tiny fine-tune that yields an exact model, resume, CLI errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from attribution import explain, load_model
from attribution.cli import main as cli_main
from attribution.core.tokens import encode_text, reference_ids, reference_token_ids
from attribution.errors import InputError
from attribution.models import LoadedModel
from attribution.workflows import finetune as ft
from attribution.workflows.evaluate import embed_ids, evaluate, pair_scores, token_ids

BASE = "all-MiniLM-L6-v2"
TEXTS = [
    "A man is playing a guitar.",
    "Someone plays music on an instrument on a small stage tonight.",
    "A dog runs.",
    "The cat sleeps.",  # same token length as "A dog runs." -> batched together
    "Stock markets fell sharply after the announcement of new tariffs.",
]

SUBJECTS = ["A man", "A woman", "A child", "The dog"]
ACTIONS = ["is playing a guitar", "is cutting an onion", "is riding a horse"]


def _pairs() -> list[tuple[str, str, float]]:
    """36 scored pairs: same scene 5, same subject 2, same action 3, nothing shared 0.5."""
    rows = []
    for i, subject in enumerate(SUBJECTS):
        for j, action in enumerate(ACTIONS):
            other_subject = SUBJECTS[(i + 1) % len(SUBJECTS)]
            other_action = ACTIONS[(j + 1) % len(ACTIONS)]
            rows.append((f"{subject} {action}.", f"{subject} {action} now.", 5.0))
            rows.append((f"{subject} {action}.", f"{subject} {other_action}.", 2.0))
            rows.append((f"{subject} {action}.", f"{other_subject} {action}.", 3.0))
    return rows[:24] + [(f"{s} is sleeping.", f"{a.capitalize()} in the rain.", 0.5) for s in SUBJECTS for a in ACTIONS]


def _write_csv(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    return path


@pytest.fixture(scope="module")
def minilm() -> LoadedModel:
    return load_model(BASE)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pairs")
    _write_csv(folder / "train.tsv", _pairs())
    _write_csv(folder / "dev.tsv", _pairs()[::3])
    return folder


@pytest.fixture(scope="module")
def tiny_exact(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ft.FinetuneReport]:
    """36 pairs, batch 12, 1 epoch: 3 optimizer steps on all-MiniLM-L6-v2."""
    out = tmp_path_factory.mktemp("models") / "tiny-exact"
    report = ft.finetune(
        BASE, data_dir / "train.tsv", out, dev=data_dir / "dev.tsv", epochs=1, batch_size=12, progress=False
    )
    return out, report


def test_reference_ids_match_the_engine(minilm: LoadedModel) -> None:
    """Batched tokenization gives the engine's reference: [CLS] [PAD]... [SEP] for BERT."""
    texts = token_ids(minilm.tokenizer, TEXTS, minilm.max_tokens)
    pad, cls, sep = minilm.tokenizer.pad_token_id, minilm.tokenizer.cls_token_id, minilm.tokenizer.sep_token_id
    for text, batched in zip(TEXTS, texts, strict=True):
        engine_ref = reference_ids(encode_text(minilm, text), minilm.tokenizer)[0].tolist()
        assert reference_token_ids(batched.ids, batched.special, minilm.tokenizer) == engine_ref
        assert engine_ref == [cls] + [pad] * (len(batched.ids) - 2) + [sep]


def test_batched_embeddings_equal_loaded_model_embed(minilm: LoadedModel) -> None:
    expected = minilm.embed(TEXTS)
    ids = token_ids(minilm.tokenizer, TEXTS, minilm.max_tokens)
    assert len(ids[2]) == len(ids[3])  # one length group has two texts
    grouped = embed_ids(minilm.embed_ids, [t.ids for t in ids], batch_size=2).numpy()
    np.testing.assert_allclose(grouped, expected, atol=1e-5, rtol=0)

    # The training forward pass: padded batch, masked mean pooling.
    embedder = ft._Embedder(_st(minilm)).eval()
    padded = minilm.tokenizer.pad({"input_ids": [list(t.ids) for t in ids]}, padding=True, return_tensors="pt")
    assert bool((padded["attention_mask"] == 0).any())  # the batch really is padded
    with torch.inference_mode():
        trained_view = embedder(padded["input_ids"], padded["attention_mask"]).numpy()
    np.testing.assert_allclose(trained_view, expected, atol=1e-5, rtol=0)


def test_pair_scores_exact_and_approximate(minilm: LoadedModel) -> None:
    a, b = TEXTS[:2], TEXTS[2:4]
    emb = minilm.embed([*a, *b]).astype(np.float64)
    refs = []
    for text in [*a, *b]:
        with torch.inference_mode():
            ref = reference_ids(encode_text(minilm, text), minilm.tokenizer)
            refs.append(minilm.pool(minilm.hidden_states(ref)[-1])[0].double().numpy())
    shifted = emb - np.stack(refs)

    def cos(x: np.ndarray, y: np.ndarray) -> float:
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    pool = minilm.embed_ids
    exact = pair_scores(pool, minilm.tokenizer, minilm.max_tokens, a, b, "exact", "cos")
    approx = pair_scores(pool, minilm.tokenizer, minilm.max_tokens, a, b, "approximate", "cos")
    dot = pair_scores(pool, minilm.tokenizer, minilm.max_tokens, a, b, "exact", "dot")
    np.testing.assert_allclose(exact, [cos(shifted[0], shifted[2]), cos(shifted[1], shifted[3])], atol=1e-5)
    np.testing.assert_allclose(approx, [cos(emb[0], emb[2]), cos(emb[1], emb[3])], atol=1e-5)
    np.testing.assert_allclose(dot, [shifted[0] @ shifted[2], shifted[1] @ shifted[3]], rtol=1e-4)


def test_tiny_finetune_gives_an_exact_model_whose_attributions_sum_to_its_score(
    tiny_exact: tuple[Path, ft.FinetuneReport],
) -> None:
    out, report = tiny_exact
    assert report.exact and report.steps == 3 and report.best_epoch == 1
    assert report.train_pairs == 36 and len(report.dev_spearman) == 1 and math.isfinite(report.dev_spearman[0])
    assert not (out / ft.CHECKPOINTS).exists()
    marker = json.loads((out / "pairlens.json").read_text())
    assert marker["exact"] is True
    assert marker["base_model"] == BASE
    assert marker["reference"] == "cls-pad-sep"
    assert marker["similarity"] == "cos"
    assert marker["training"]["pairs"] == 36 and marker["training"]["epochs"] == 1
    assert marker["metrics"]["dev_spearman"] == report.dev_spearman

    model = load_model(str(out))
    assert model.exact is True and model.default_mode == "exact" and model.similarity == "cos"
    base = load_model(BASE)
    assert not np.allclose(model.embed(TEXTS[:1]), base.embed(TEXTS[:1]), atol=1e-4)  # the weights did change
    res = explain(model, "A man is playing a guitar.", "A woman is riding a horse.", pos=False)
    assert res.mode == "exact"
    assert abs(res.reference_terms) < 1e-6
    assert abs(res.integration_error) <= 1e-3 * abs(res.score)
    assert abs(res.attribution_sum - res.score) <= 1e-3 * abs(res.score)


def test_evaluate_uses_the_exact_mode_of_an_exact_model(
    tiny_exact: tuple[Path, ft.FinetuneReport], data_dir: Path
) -> None:
    out, report = tiny_exact
    result = evaluate(str(out), data_dir / "dev.tsv")
    assert result.mode == "exact" and result.pairs == 12 and result.malformed == 0
    assert result.spearman == pytest.approx(report.dev_spearman[0], abs=1e-6)  # same number as training reported
    approx = evaluate(str(out), data_dir / "dev.tsv", mode="approximate")
    assert approx.mode == "approximate" and math.isfinite(approx.spearman)


def test_existing_model_is_not_overwritten(tiny_exact: tuple[Path, ft.FinetuneReport], data_dir: Path) -> None:
    out, _ = tiny_exact
    with pytest.raises(InputError, match="already holds a model"):
        ft.finetune(BASE, data_dir / "train.tsv", out, progress=False)


def test_bare_out_name_goes_to_the_models_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAIRLENS_HOME", str(tmp_path))
    assert ft.resolve_out("my-exact") == tmp_path / "models" / "my-exact"
    assert ft.resolve_out(str(tmp_path / "x")) == tmp_path / "x"
    assert ft.resolve_out("./here") == Path.cwd() / "here"


def test_interrupted_run_resumes_from_last_epoch(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    original = ft._save_checkpoint

    def save_then_interrupt(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "_save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(BASE, data_dir / "train.tsv", out, epochs=2, batch_size=12, plain=True, progress=False)
    monkeypatch.setattr(ft, "_save_checkpoint", original)
    assert (out / ft.CHECKPOINTS / "epoch-1" / "state.json").is_file()
    assert not (out / "pairlens.json").exists()

    with pytest.raises(InputError, match="different settings"):
        ft.finetune(BASE, data_dir / "train.tsv", out, epochs=2, batch_size=8, plain=True, progress=False)

    report = ft.finetune(BASE, data_dir / "train.tsv", out, epochs=2, batch_size=12, plain=True, progress=False)
    assert report.resumed_from == 1
    assert len(report.epoch_seconds) == 2 and len(report.train_loss) == 2
    assert not (out / ft.CHECKPOINTS).exists()
    marker = json.loads((out / "pairlens.json").read_text())
    assert marker["exact"] is False and marker["training"]["epochs"] == 2
    assert load_model(str(out)).exact is False


def test_finetune_cli_bad_input_is_one_line_exit_2(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_scores = tmp_path / "noscore.csv"
    no_scores.write_text("sentence1,sentence2\nA,B\n")
    out_of_range = _write_csv(tmp_path / "range.tsv", [("A b.", "C d.", 7.0)])
    train = str(data_dir / "train.tsv")
    cases = [
        ["--base", BASE, "--train", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o1")],
        ["--base", BASE, "--train", str(no_scores), "--out", str(tmp_path / "o2")],
        ["--base", BASE, "--train", str(out_of_range), "--out", str(tmp_path / "o3")],
        ["--base", "no-such-model-anywhere", "--train", train, "--out", str(tmp_path / "o4")],
        ["--base", BASE, "--train", train, "--out", str(tmp_path / "o5"), "--epochs", "0"],
    ]
    for argv in cases:
        assert cli_main(["finetune", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("pairlens: error: ") and captured.err.count("\n") == 1, captured.err
        assert "Traceback" not in captured.err
    assert not any((tmp_path / f"o{k}").exists() for k in range(1, 6))


def _st(model: LoadedModel) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model.source, device="cpu", local_files_only=True)
