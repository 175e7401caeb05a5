"""The structured entry layer (attribution.core.structured) against the generic vmap(jvp) path and the
per-dimension autograd oracle (tests/oracle.py), for the packaged MiniLM and the tiny architectures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from oracle import per_dimension_integrated_jacobian

from attribution import load_model
from attribution.core.engine import NodeEvaluator, PairPaths, prepare_pair
from attribution.core.execution import Run
from attribution.core.jacobian import integrated_jacobian
from attribution.core.options import ExplainOptions
from attribution.core.quadrature import quadrature_nodes
from attribution.core.structured import StructuredColumns, structured_layer

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."
NODES, WEIGHTS = quadrature_nodes("gauss-legendre", 3)


def rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def pair_at(model: Any, layer: int, text_a: str = A, text_b: str = B) -> PairPaths:
    options = ExplainOptions(layer=layer, direction="forward").for_model(model)
    return prepare_pair(model, text_a, text_b, options)


def generic(evaluator: NodeEvaluator, path: Any, nodes: np.ndarray) -> torch.Tensor:
    evaluator.use_structured = False
    try:
        return evaluator(path, nodes)
    finally:
        del evaluator.use_structured  # back to the class default


def check(model: Any, layer: int, *, head: bool | None = None) -> None:
    """Structured slices equal the generic ones, and E equals the oracle, within 1e-5 relative (both texts)."""
    pair = pair_at(model, layer)
    fast = pair.evaluator.structured
    assert fast is not None, "this layer should qualify for the structured path"
    if head is not None:
        assert (fast.head is not None) == head
    for path in (pair.a, pair.b):
        slices = pair.evaluator(path, NODES)
        assert fast.verified is True
        assert slices.shape == (len(NODES), model.embedding_dim, path.h.shape[0])
        assert rel(slices, generic(pair.evaluator, path, NODES)) <= 1e-5
        oracle = per_dimension_integrated_jacobian(pair.evaluator.tail, path.h, path.r, NODES, WEIGHTS)
        assert rel(integrated_jacobian(slices, WEIGHTS), oracle) <= 1e-5


@pytest.mark.parametrize("layer", [0, 3, 5])
def test_minilm_matches_generic_and_oracle(minilm: Any, layer: int) -> None:
    check(minilm, layer, head=layer == minilm.num_layers - 1)


def test_minilm_hand_head_equals_generic_rest(minilm: Any) -> None:
    """At the last layer the hand-differentiated head and the vmap(jvp) rest give the same slices."""
    pair = pair_at(minilm, 5)
    hand = StructuredColumns.for_model(minilm, 5)
    rest = StructuredColumns.for_model(minilm, 5, final=False)
    assert hand is not None and rest is not None and hand.head is not None and rest.head is None
    h, r = pair.a.h, pair.a.r
    nodes = np.array([0.1, 0.5, 0.9])
    got = hand(h, r, nodes, budget_bytes=2**30, run=Run())
    assert rel(got, rest(h, r, nodes, budget_bytes=2**30, run=Run())) <= 1e-5


@pytest.mark.parametrize(
    ("name", "head"),
    [("bert", True), ("roberta", True), ("xlm-roberta", False), ("mpnet", True), ("bert-cls-dot", True)],
)
def test_tiny_bert_like_models(tiny_models: Mapping[str, Path], name: str, head: bool) -> None:
    """Entry layer 0 (generic rest) and the last layer (hand head where the pooling is mean or CLS;
    xlm-roberta's tiny model pools by max, so its rest is generic); mpnet adds its position bias,
    bert-cls-dot CLS pooling + Dense."""
    model = load_model(str(tiny_models[name]))
    check(model, 0, head=model.num_layers == 1 and head)
    check(model, model.num_layers - 1, head=head)


@pytest.mark.parametrize("name", ["distilbert", "deberta-v2", "qwen3"])
def test_other_layouts_fall_back_to_the_generic_path(tiny_models: Mapping[str, Path], name: str) -> None:
    model = load_model(str(tiny_models[name]))
    assert structured_layer(model, 0) is None
    pair = pair_at(model, 0)
    assert pair.evaluator.structured is None
    oracle = per_dimension_integrated_jacobian(pair.evaluator.tail, pair.a.h, pair.a.r, NODES, WEIGHTS)
    assert rel(integrated_jacobian(pair.evaluator(pair.a, NODES), WEIGHTS), oracle) <= 1e-5


def test_pooling_layer_and_reverse_mode_never_take_the_structured_path(minilm: Any) -> None:
    assert structured_layer(minilm, minilm.num_layers) is None  # L = num_layers: the head alone
    options = ExplainOptions(layer=3, direction="reverse").for_model(minilm)
    assert prepare_pair(minilm, A, B, options).evaluator.structured is None


def test_a_layer_that_does_not_reproduce_the_tail_falls_back(minilm: Any) -> None:
    """The numerical guard: a wrong decomposition (here a wrong attention scale) is detected and the
    generic path is used, so the slices stay right."""
    pair = pair_at(minilm, 3)
    fast = pair.evaluator.structured
    assert fast is not None
    fast.spec = type(fast.spec)(**{**fast.spec.__dict__, "scale": 2 * fast.spec.scale})
    got = pair.evaluator(pair.a, NODES)
    assert fast.verified is False
    assert rel(got, generic(pair.evaluator, pair.a, NODES)) == 0.0


def test_progress_units_are_counted(minilm: Any) -> None:
    """The structured path reports S units per node, like the generic one (progress, cancellation)."""
    seen: list[int] = []
    run = Run(on_progress=lambda p: seen.append(p.done))
    options = ExplainOptions(layer=5).for_model(minilm)
    pair = prepare_pair(minilm, A, B, options, run)
    pair.evaluator(pair.a, NODES)
    assert seen and seen[-1] == len(NODES) * pair.a.h.shape[0]
    run.cancel.set()
    from attribution.core.execution import Cancelled

    with pytest.raises(Cancelled):
        pair.evaluator(pair.b, NODES)


def test_bf16_precision_is_an_option_with_a_visible_effect(minilm: Any) -> None:
    import argparse

    from attribution import InputError, explain
    from attribution.core.options import add_explain_options, options_from_args

    with pytest.raises(InputError, match="precision"):
        ExplainOptions.create(precision="fp16")
    parser = argparse.ArgumentParser()
    add_explain_options(parser)
    assert options_from_args(parser.parse_args(["--precision", "bf16"])).precision == "bf16"
    assert options_from_args(parser.parse_args([])).precision == "fp32"
    fp = explain(minilm, A, B, layer=5, steps=4, pos=False)
    bf = explain(minilm, A, B, layer=5, steps=4, precision="bf16", pos=False)
    assert not any("bf16" in w for w in fp.warnings)
    assert any("bf16" in w and "relative integration error" in w for w in bf.warnings)
    diff = float(np.abs(bf.matrix - fp.matrix).max() / np.abs(fp.matrix).max())
    assert 1e-5 < diff < 5e-2  # it really ran in bf16, and stays close
    assert bf.matrix.dtype == np.float64 and bf.relative_error != fp.relative_error
