"""explain_many equals a loop of explain() (same options, same nodes) and reports bad pairs by index."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attribution import Cancelled, InputError, Run, explain, explain_many, load_model
from attribution.core.many import explain_outcomes, first_round_nodes
from attribution.core.options import ExplainOptions

GUITAR = "A man is playing a guitar on stage."
PAIRS = [
    (GUITAR, "Someone performs music with an instrument."),
    ("The cat sleeps.", "A dog runs."),  # two texts of one length
    ("A dog runs.", GUITAR),  # both texts seen before, on the other side
    ("The cat sleeps.", "A dog runs."),  # a duplicate pair
    ("A woman is slicing an onion.", "A woman is cutting an onion."),
]
SHORT = PAIRS[1:4]


def rel_maxdiff(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def assert_same(got, want, tol: float = 1e-5) -> None:  # type: ignore[no-untyped-def]
    assert got.a.tokens == want.a.tokens and got.b.tokens == want.b.tokens
    assert got.steps == want.steps and got.converged == want.converged
    assert got.layer == want.layer and got.mode == want.mode and got.rule == want.rule
    assert [n for n, _ in got.error_by_steps] == [n for n, _ in want.error_by_steps]
    assert got.matrix.shape == want.matrix.shape
    assert rel_maxdiff(got.matrix, want.matrix) <= tol
    assert got.score == pytest.approx(want.score, rel=1e-5, abs=1e-7)
    assert got.target == pytest.approx(want.target, rel=1e-5, abs=1e-7)
    assert got.attribution_sum == pytest.approx(want.attribution_sum, rel=1e-5, abs=1e-7)
    assert abs(got.relative_error - want.relative_error) <= 1e-2 * want.relative_error + 1e-5


@pytest.mark.parametrize("layer", [3, None])
def test_equals_loop_of_explain(minilm, layer: int | None) -> None:  # type: ignore[no-untyped-def]
    many = explain_many(minilm, PAIRS, layer=layer)
    assert len(many) == len(PAIRS)
    for (a, b), got in zip(PAIRS, many, strict=True):
        assert_same(got, explain(minilm, a, b, layer=layer, pos=False))


def test_equals_loop_of_explain_at_the_embeddings(minilm) -> None:  # type: ignore[no-untyped-def]
    many = explain_many(minilm, SHORT, layer=0)  # steps="auto" starts with 32 nodes here
    for (a, b), got in zip(SHORT, many, strict=True):
        assert_same(got, explain(minilm, a, b, layer=0, pos=False))


def test_fixed_steps_and_exact_mode(minilm) -> None:  # type: ignore[no-untyped-def]
    options = ExplainOptions(layer=4, steps=3, rule="midpoint", mode="exact")
    many = explain_many(minilm, PAIRS, options)
    for (a, b), got in zip(PAIRS, many, strict=True):
        assert got.steps == 3 and got.mode == "exact" and got.tolerance is None
        assert_same(got, explain(minilm, a, b, options, pos=False))


def test_the_first_round_is_shared_and_later_rounds_reuse_it(minilm) -> None:  # type: ignore[no-untyped-def]
    """Each first-round node is evaluated once per unique text: a loop spends S tangent passes per node
    for every text of every pair, explain_many only for the 6 unique texts of PAIRS."""
    options = ExplainOptions(steps=2)
    loop_run, many_run = Run(), Run()
    for a, b in PAIRS:
        explain(minilm, a, b, options, pos=False, run=loop_run)
    explain_many(minilm, PAIRS, options, run=many_run)
    length = {t: len(minilm.tokenizer(t)["input_ids"]) for pair in PAIRS for t in pair}
    assert len(length) == 6
    assert loop_run.done == 2 * sum(length[t] for pair in PAIRS for t in pair)
    assert many_run.done == many_run.planned == 2 * sum(length.values())
    assert len(first_round_nodes(options.for_model(minilm))) == 2


@pytest.mark.parametrize("arch", ["bert", "mpnet", "bert-cls-dot"])
def test_tiny_models_equal_explain(tiny_models, arch: str) -> None:  # type: ignore[no-untyped-def]
    model = load_model(str(tiny_models[arch]))
    # bert-cls-dot embeds in 16 dimensions: the long text goes through reverse mode, left to integrate()
    pairs = [*SHORT, (GUITAR + " " + GUITAR + " " + GUITAR, "A dog runs.")]
    for layer in (0, 1):
        many = explain_many(model, pairs, layer=layer, steps=4)
        for (a, b), got in zip(pairs, many, strict=True):
            assert_same(got, explain(model, a, b, layer=layer, steps=4, pos=False))


def test_a_bad_pair_is_named_by_its_index_before_any_work(minilm) -> None:  # type: ignore[no-untyped-def]
    run = Run()
    with pytest.raises(InputError, match=r"^Pair 1: Text B is empty"):
        explain_many(minilm, [PAIRS[0], ("Fine.", "   "), PAIRS[1]], run=run)
    assert run.done == 0
    with pytest.raises(InputError, match=r"^Pair 0: Text A .*no tokens the model can read"):
        explain_many(minilm, [("\u0301\u0301", "Fine.")])  # combining accents alone: no tokens
    with pytest.raises(InputError, match="Pair 0 must be a"):
        explain_many(minilm, ["just one text"])  # type: ignore[list-item]


def test_outcomes_report_bad_pairs_in_place(minilm) -> None:  # type: ignore[no-untyped-def]
    outcomes = explain_outcomes(minilm, [PAIRS[1], ("", "A dog runs."), PAIRS[1]], steps=2)
    assert isinstance(outcomes[1], InputError) and "Text A is empty" in str(outcomes[1])
    assert not isinstance(outcomes[0], InputError) and not isinstance(outcomes[2], InputError)
    np.testing.assert_allclose(outcomes[0].matrix, outcomes[2].matrix)


def test_progress_cancellation_and_empty(minilm) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, int]] = []
    explain_many(minilm, SHORT, steps=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert explain_many(minilm, [], steps=2) == []
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        explain_many(minilm, SHORT, steps=2, run=Run(cancel=cancel))


def test_options_and_keywords_not_both(minilm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="not both"):
        explain_many(minilm, SHORT, ExplainOptions(), steps=2)
