"""Faithfulness checks against explicit loops that call the model one edit at a time, and the second method
against its definition by brute-force autograd (tiny models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from attribution import InputError, explain, load_model
from attribution.core.engine import prepare_path
from attribution.core.tokens import encode_text, pad_id, reference_token_ids
from attribution.faithfulness import (
    deletion_curves,
    explain_method,
    faithfulness_report,
    perturbation_sweep,
    spearman,
)

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."


@pytest.fixture(scope="module")
def tiny(tiny_models):  # type: ignore[no-untyped-def]
    return load_model(str(tiny_models["bert"]))


@pytest.fixture(scope="module")
def tiny_exact(tiny_models):  # type: ignore[no-untyped-def]
    return load_model(str(tiny_models["bert-cls-dot"]))


def one_score(model, ids_a: list[int], ids_b: list[int], tokens_a, tokens_b, mode: str, similarity: str) -> float:  # type: ignore[no-untyped-def]
    """The explained score of one edited pair: one forward pass per sequence, no batching."""
    embedded = []
    for ids, tokens in ((ids_a, tokens_a), (ids_b, tokens_b)):
        with torch.no_grad():
            f = model.embed_ids(torch.tensor([ids]))[0].double()
            if mode == "exact":
                assert len(ids) == len(tokens.special), "exact mode is checked with masks (same length) only"
                ref = reference_token_ids(ids, tokens.special, model.tokenizer)
                f = f - model.embed_ids(torch.tensor([ref]))[0].double()
        embedded.append(f)
    dot = float(embedded[0] @ embedded[1])
    if similarity == "dot":
        return dot
    norm = float(embedded[0].norm() * embedded[1].norm())
    return dot / norm if norm > 0 else 0.0


def masked(ids: list[int], positions: set[int], pad: int) -> list[int]:
    return [pad if i in positions else t for i, t in enumerate(ids)]


def test_spearman_with_ties_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 30).astype(float)  # many ties
    y = x + rng.normal(0, 1.5, 30)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(4), np.arange(4.0)))


@pytest.mark.parametrize("op", ["mask", "drop"])
def test_sweep_equals_one_edit_at_a_time(tiny, op: str) -> None:  # type: ignore[no-untyped-def]
    res = explain(tiny, A, B, layer=1, steps=4, pos=False)
    sweep = perturbation_sweep(tiny, res, op=op, chunk=64)
    ta, tb = encode_text(tiny, A), encode_text(tiny, B)
    ids_a, ids_b = ta.input_ids[0].tolist(), tb.input_ids[0].tolist()
    pad = pad_id(tiny.tokenizer)
    base = one_score(tiny, ids_a, ids_b, ta, tb, res.mode, res.similarity)
    assert sweep.score == pytest.approx(base, abs=1e-6)
    assert sweep.score == pytest.approx(res.score, abs=1e-5)
    non_special_a = [i for i, s in enumerate(ta.special) if not s]
    non_special_b = [i for i, s in enumerate(tb.special) if not s]
    assert [it.positions for it in sweep.items] == [(i,) for i in non_special_a + non_special_b]  # never [CLS]/[SEP]
    for item in sweep.items:
        (pos,) = item.positions
        ids = ids_a if item.side == "a" else ids_b
        edited = masked(ids, {pos}, pad) if op == "mask" else [t for i, t in enumerate(ids) if i != pos]
        pair = (edited, ids_b) if item.side == "a" else (ids_a, edited)
        assert item.score == pytest.approx(one_score(tiny, *pair, ta, tb, "approximate", "cos"), abs=1e-6)
        assert item.loss == pytest.approx(base - item.score, abs=1e-6)
        total = res.matrix[pos].sum() if item.side == "a" else res.matrix[:, pos].sum()
        assert item.attribution == pytest.approx(total, abs=1e-6)
    assert sweep.spearman == pytest.approx(spearman(sweep.attributions, sweep.losses))
    assert sweep.pad_token == "[PAD]"
    # every single-token edit of both texts (and the unedited pair) in one batched pass per sequence length
    lengths = {len(ids_a), len(ids_b)} if op == "mask" else {len(ids_a), len(ids_b), len(ids_a) - 1, len(ids_b) - 1}
    assert sweep.forwards == len(lengths)


def test_word_level_sweep_removes_whole_words(tiny) -> None:  # type: ignore[no-untyped-def]
    text = "Unbelievably, the saxophonist performs."
    res = explain(tiny, text, B, layer=1, steps=3)
    sweep = perturbation_sweep(tiny, res, level="word", op="mask")
    words_a = [it for it in sweep.items if it.side == "a"]
    assert [it.label for it in words_a][:3] == ["Unbelievably", ",", "the"]
    split = [it for it in words_a if len(it.positions) > 1]
    assert split, "expected a word of several subword tokens"
    ta, tb = encode_text(tiny, text), encode_text(tiny, B)
    ids_a, ids_b = ta.input_ids[0].tolist(), tb.input_ids[0].tolist()
    pad = pad_id(tiny.tokenizer)
    for item in split:
        edited = masked(ids_a, set(item.positions), pad)
        assert item.score == pytest.approx(one_score(tiny, edited, ids_b, ta, tb, "approximate", "cos"), abs=1e-6)
        assert item.attribution == pytest.approx(res.matrix[list(item.positions)].sum(), abs=1e-6)


def hand_curves(model, res, order: list[tuple[str, int]], op: str) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Deletion and insertion scores, removing the (side, position) tokens in `order` one edit at a time."""
    ta, tb = encode_text(model, res.a.text), encode_text(model, res.b.text)
    ids = {"a": ta.input_ids[0].tolist(), "b": tb.input_ids[0].tolist()}
    pad = pad_id(model.tokenizer)

    def edit(side: str, gone: set[int]) -> list[int]:
        if op == "mask":
            return masked(ids[side], gone, pad)
        return [t for i, t in enumerate(ids[side]) if i not in gone]

    deletion, insertion = [], []
    for k in range(len(order) + 1):
        gone = {"a": {p for s, p in order[:k] if s == "a"}, "b": {p for s, p in order[:k] if s == "b"}}
        rest = {"a": {p for s, p in order[k:] if s == "a"}, "b": {p for s, p in order[k:] if s == "b"}}
        deletion.append(one_score(model, edit("a", gone["a"]), edit("b", gone["b"]), ta, tb, res.mode, res.similarity))
        insertion.append(one_score(model, edit("a", rest["a"]), edit("b", rest["b"]), ta, tb, res.mode, res.similarity))
    return deletion, insertion


def units_of(res) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [("a", i) for i, s in enumerate(res.a.special) if not s] + [
        ("b", j) for j, s in enumerate(res.b.special) if not s
    ]


@pytest.mark.parametrize("op", ["mask", "drop"])
def test_unit_order_curves_equal_hand_loops(tiny, op: str) -> None:  # type: ignore[no-untyped-def]
    res = explain(tiny, A, B, layer=1, steps=4, pos=False)
    curves = deletion_curves(tiny, res, op=op, draws=2, seed=7)
    units = units_of(res)
    totals = [res.matrix[p].sum() if s == "a" else res.matrix[:, p].sum() for s, p in units]
    by_map = [units[k] for k in sorted(range(len(units)), key=lambda k: (-totals[k], k))]
    deletion, insertion = hand_curves(tiny, res, by_map, op)
    ij = curves.curve("integrated-jacobians", "deletion")
    np.testing.assert_allclose(ij.scores, deletion, atol=1e-6)
    np.testing.assert_allclose(curves.curve("integrated-jacobians", "insertion").scores, insertion, atol=1e-6)
    n = len(units)
    np.testing.assert_allclose(ij.fractions, np.arange(n + 1) / n)
    assert ij.area == pytest.approx(np.trapezoid(deletion, np.arange(n + 1) / n), abs=1e-6)
    # random order: the same seeded permutations, each by hand, averaged
    rng = np.random.default_rng(7)
    draws = [hand_curves(tiny, res, [units[k] for k in rng.permutation(n)], op) for _ in range(2)]
    np.testing.assert_allclose(
        curves.curve("random", "deletion").scores, np.mean([d for d, _ in draws], axis=0), atol=1e-6
    )
    np.testing.assert_allclose(
        curves.curve("random", "insertion").scores, np.mean([i for _, i in draws], axis=0), atol=1e-6
    )
    areas = [np.trapezoid(d, np.arange(n + 1) / n) for d, _ in draws]
    assert curves.curve("random", "deletion").area == pytest.approx(np.mean(areas), abs=1e-6)
    assert curves.between("integrated-jacobians") == pytest.approx(np.mean(areas) - ij.area, abs=1e-6)


def test_pair_order_removes_both_tokens_behind_each_cell(tiny) -> None:  # type: ignore[no-untyped-def]
    res = explain(tiny, A, B, layer=1, steps=4, pos=False)
    curves = deletion_curves(tiny, res, order="pair", draws=1)
    rows = [i for i, s in enumerate(res.a.special) if not s]
    cols = [j for j, s in enumerate(res.b.special) if not s]
    cells = sorted(
        ((i, j) for i in rows for j in cols), key=lambda c: (-res.matrix[c], rows.index(c[0]), cols.index(c[1]))
    )
    gone: set[tuple[str, int]] = set()
    sizes, order = [0], []
    for i, j in cells:
        new = [u for u in (("a", i), ("b", j)) if u not in gone]
        if new:
            gone.update(new)
            order.extend(new)
            sizes.append(len(order))
    deletion, insertion = hand_curves(tiny, res, order, "mask")
    ij = curves.curve("integrated-jacobians", "deletion")
    np.testing.assert_allclose(ij.fractions, np.array(sizes) / len(order))
    np.testing.assert_allclose(ij.scores, [deletion[k] for k in sizes], atol=1e-6)
    np.testing.assert_allclose(
        curves.curve("integrated-jacobians", "insertion").scores, [insertion[k] for k in sizes], atol=1e-6
    )
    assert ij.steps[0] == [f"a:{res.a.tokens[cells[0][0]]}", f"b:{res.b.tokens[cells[0][1]]}"]


def test_exact_mode_dot_scores_and_empty_pair(tiny_exact) -> None:  # type: ignore[no-untyped-def]
    res = explain(tiny_exact, A, B, layer=1, steps=3, mode="exact", pos=False)
    sweep = perturbation_sweep(tiny_exact, res)
    assert sweep.score == pytest.approx(res.score, rel=1e-5)
    curves = deletion_curves(tiny_exact, res, draws=1)
    assert curves.empty_score == 0.0  # every token masked: the shifted embeddings are zero
    order = units_of(res)
    deletion, _ = hand_curves(tiny_exact, res, order, "mask")
    assert deletion[-1] == pytest.approx(0.0, abs=1e-6)


def test_hessian_x_input_equals_its_definition(tiny) -> None:  # type: ignore[no-untyped-def]
    """E[d, i] = sum_k (h - r)[i, k] d f_d / d h[i, k] at h (a = 1 only), A = E_a^T E_b / (|f_a| |f_b|)."""
    layer = 1
    hxi = explain_method(tiny, A, B, method="hessian-x-input", layer=layer, pos=False)
    tail = tiny.tail(layer)
    es, fs = [], []
    for text in (A, B):
        path = prepare_path(tiny, text, layer, "")
        jac = torch.autograd.functional.jacobian(lambda x: tail(x[None])[0], path.h)  # (D, S, H)
        es.append(torch.einsum("dsk,sk->ds", jac, path.h - path.r))
        fs.append(path.f)
    expected = (es[0].T @ es[1]).double() / float(fs[0].norm() * fs[1].norm())
    np.testing.assert_allclose(hxi.matrix, expected.numpy(), rtol=0, atol=1e-6 * float(np.abs(expected).max()))
    assert (hxi.steps, hxi.rule) == (1, "riemann-right")
    assert "Second method" in hxi.warnings[0]
    ij = explain_method(tiny, A, B, method="integrated-jacobians", layer=layer, steps=8, pos=False)
    assert not np.allclose(ij.matrix, hxi.matrix, atol=1e-4)  # two methods, two maps


def test_report_sweeps_both_methods_on_the_same_edits(tiny) -> None:  # type: ignore[no-untyped-def]
    report = faithfulness_report(tiny, A, B, layer=1, steps=4, draws=2)
    assert report.methods == ["integrated-jacobians", "hessian-x-input"]
    ij, hxi = report.sweeps["integrated-jacobians"], report.sweeps["hessian-x-input"]
    np.testing.assert_allclose(ij.losses, hxi.losses)  # the model's side is the same
    assert hxi.forwards == 0  # every edit was embedded for the first sweep
    assert not np.allclose(ij.attributions, hxi.attributions)
    data = report.to_dict()
    assert set(data["curves"]["between"]) == {
        "integrated-jacobians/deletion", "integrated-jacobians/insertion",
        "hessian-x-input/deletion", "hessian-x-input/insertion",
    }  # fmt: skip
    assert data["sweeps"]["hessian-x-input"]["method_label"].startswith("Hessian × input (second method")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "blank"}, "choose 'mask'"),
        ({"level": "sentence"}, "choose 'token' or 'word'"),
        ({"methods": ["bilrp"]}, "Unknown attribution method"),
        ({"order": "cells"}, "choose 'unit'"),
        ({"draws": 0}, "draws must be"),
    ],
)
def test_bad_choices_say_what_to_do(tiny, kwargs: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        faithfulness_report(tiny, A, B, layer=1, steps=2, **kwargs)


def test_a_result_of_other_texts_or_models_is_refused(tiny, tiny_exact) -> None:  # type: ignore[no-untyped-def]
    res = explain(tiny, A, B, layer=1, steps=2, pos=False)
    with pytest.raises(InputError, match="tokenizes text A of this result differently"):
        perturbation_sweep(tiny, res.replace(a=res.a.replace(text="Another text entirely.")))
    with pytest.raises(InputError, match="token-level"):
        perturbation_sweep(tiny, res.to_words() if res.is_annotated else res.replace(level="word"))
    other = explain(tiny, A, "Completely different words here.", layer=1, steps=2, pos=False)
    with pytest.raises(InputError, match="not of the same pair"):
        deletion_curves(tiny, {"integrated-jacobians": res, "hessian-x-input": other})


def test_prompt_tokens_are_never_removed_and_the_score_is_the_results(tiny_models) -> None:  # type: ignore[no-untyped-def]
    model = load_model(str(tiny_models["nomic_bert"]))  # prompts left out of pooling (include_prompt=False)
    res = explain(model, A, B, layer=1, steps=2, prompt_name="query", pos=False)
    sweep = perturbation_sweep(model, res, prompt_name="query")
    assert sweep.score == pytest.approx(res.score, abs=1e-5)
    fixed = res.a.special_or_prompt()
    assert any(res.a.prompt) and all(not fixed[p] for it in sweep.items if it.side == "a" for p in it.positions)
    assert len([it for it in sweep.items if it.side == "a"]) == fixed.count(False)
    with pytest.raises(InputError, match="tokenizes text A of this result differently"):
        perturbation_sweep(model, res)  # without the prompt the tokens do not match


def test_a_small_memory_budget_splits_the_batch_not_the_numbers(minilm) -> None:  # type: ignore[no-untyped-def]
    res = explain(minilm, "A man plays a guitar.", "Music.", steps=2, pos=False)
    whole = perturbation_sweep(minilm, res)
    assert minilm.sequence_bytes(len(res.a.tokens)) > 2**20 // 2  # so 1 MB holds one sequence per pass
    split = perturbation_sweep(minilm, res, memory_budget_mb=1)
    assert whole.forwards == 2  # one pass per sequence length
    assert split.forwards >= len(res.a.tokens) - 2 + 1  # text A's versions of one length: one per pass
    np.testing.assert_allclose(split.losses, whole.losses, atol=1e-6)


def test_a_cancelled_run_stops_the_check(tiny) -> None:  # type: ignore[no-untyped-def]
    import threading

    from attribution import Cancelled, Run

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        faithfulness_report(tiny, A, B, layer=1, steps=2, run=Run(cancel=cancel))


def test_explain_method_calls_the_engines_explain_as_it_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """explain_method looks engine.explain up at call time: a module imported while a test (or a plug-in)
    had replaced it must not keep that replacement after it is put back (the page's AppTests replace it
    with toy models; the docs' faithfulness example then got a toy result)."""
    from attribution.core import engine

    calls: list[str] = []

    def replacement(model, text_a, text_b, options, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(text_a)
        raise InputError("replaced")

    monkeypatch.setattr(engine, "explain", replacement)
    with pytest.raises(InputError, match="replaced"):
        explain_method("all-MiniLM-L6-v2", "dogs run", "cats sleep", method="integrated-jacobians", steps=2)
    assert calls == ["dogs run"]
