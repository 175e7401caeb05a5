"""Adaptive Gauss-Kronrod integration (attribution.core.adaptive): the rules, the residual identity
behind the certificate, agreement with the per-dimension oracle on the meshes it chooses, node reuse,
the cap and the not-converged note."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from oracle import per_dimension_integrated_jacobian
from tiny_models import ARCHITECTURES

from attribution import Attribution, explain, load_model
from attribution.core.adaptive import (
    GUARD,
    AdaptivePath,
    AdaptiveResult,
    Interval,
    gauss_kronrod,
    gauss_legendre,
    integrate_adaptive,
    pair_error,
    split_point,
    within_tolerance,
)
from attribution.core.engine import NodeEvaluator, PairPaths, prepare_pair
from attribution.core.options import ExplainOptions
from attribution.core.quadrature import auto_start, node_key, quadrature_nodes

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."


def pair_at(model: Any, layer: int, text_a: str = A, text_b: str = B, **options: Any) -> PairPaths:
    resolved = ExplainOptions(layer=layer, **options).for_model(model)
    return prepare_pair(model, text_a, text_b, resolved)


def mesh_rule(mesh: list[Interval]) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = (np.concatenate(parts) for parts in zip(*(iv.rule() for iv in mesh), strict=True))
    return nodes, weights


def assert_matches_oracle(pair: PairPaths, done: AdaptiveResult, rel: float = 1e-5) -> None:
    """E of both texts equals the per-dimension oracle with the nodes and weights of the chosen meshes."""
    for path, mesh, got in ((pair.a, done.mesh_a, done.e_a), (pair.b, done.mesh_b, done.e_b)):
        nodes, weights = mesh_rule(mesh)
        oracle = per_dimension_integrated_jacobian(pair.evaluator.tail, path.h, path.r, nodes, weights)
        assert float((got.double() - oracle.double()).abs().max() / oracle.double().abs().max()) <= rel


# ------------------------------------------------------------------------------------------------ rules


@pytest.mark.parametrize("m", [2, 3, 4, 7, 8, 15, 32])
def test_kronrod_is_exact_to_degree_3m_plus_1_and_nests_gauss(m: int) -> None:
    x, w = gauss_kronrod(m)
    assert len(x) == 2 * m + 1 and (w > 0).all() and abs(w.sum() - 1) < 1e-13
    for k in range(3 * m + 2):
        assert abs((w * x**k).sum() - 1 / (k + 1)) < 1e-12 * max(1, m / 8)
    # (any 2m+1 nodes with interpolatory weights are exact to degree 2m only: 3m+1 is the Kronrod property)
    g, _ = gauss_legendre(m)
    assert set(g.tolist()) <= set(x.tolist())  # the same floats: cached slices are found again


def test_round_zero_rule_is_the_fixed_rule() -> None:
    for layer in (0, 3):
        m = auto_start("gauss-legendre", layer)
        nodes, weights = Interval(0.0, 1.0, m, False).rule()
        fixed = quadrature_nodes("gauss-legendre", m)
        assert np.array_equal(nodes, fixed[0]) and np.array_equal(weights, fixed[1])


def test_pair_error_is_the_exact_error_and_bounds_it() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        d_a, d_b, r_a, r_b = (torch.randn(7, generator=gen, dtype=torch.float64) for _ in range(4))
        exact, bound = pair_error(r_a, r_b, d_a, d_b, 2.5)
        direct = float((d_a - r_a) @ (d_b - r_b) - d_a @ d_b) / 2.5
        assert exact == pytest.approx(direct, rel=1e-12)
        assert abs(exact) <= bound


def test_split_point_grades_toward_a_transition() -> None:
    assert split_point(0.0, 1.0, [], 0.2) == 0.5
    assert split_point(0.0, 1.0, [0.37], 0.2) == 0.37
    assert split_point(0.37, 1.0, [0.37], 0.2) == pytest.approx(0.37 + 0.2 * 0.63)
    assert split_point(0.0, 0.37, [0.37], 0.2) == pytest.approx(0.37 - 0.2 * 0.37)


# ------------------------------------------------------------------------------------------------ the identity


def test_column_sums_are_the_path_derivative_and_residuals_are_exact(minilm: Any) -> None:
    """sum_i phi(a)[:, i] = d f(x(a)) / da, so an interval's residual is the rule's exact error there."""
    from torch.func import jvp

    pair = pair_at(minilm, 3)
    path, evaluator = pair.a, pair.evaluator
    nodes = np.array([0.25, 0.75])
    evaluator.evaluate(path, nodes)
    cols = torch.stack([path.evaluated[node_key(a)] for a in nodes])
    delta = path.h - path.r
    points = path.r + torch.as_tensor(nodes, dtype=torch.float32)[:, None, None] * delta
    with torch.no_grad():
        deriv = jvp(evaluator.tail, (points,), (delta.expand_as(points),))[1]
    assert float((cols.sum(-1) - deriv).abs().max() / deriv.abs().max()) < 1e-5
    own = evaluator.derivative(path, nodes)  # what the adaptive rule asks for before a node's slice
    assert own.shape == deriv.shape and float((own - deriv).abs().max() / deriv.abs().max()) < 1e-6


# ------------------------------------------------------------------------------------------------ MiniLM


def test_minilm_refines_converges_and_matches_the_oracle_on_its_mesh(minilm: Any) -> None:
    """Layer 3 needs a second round (G_8 -> K_17); the result is E of the chosen mesh exactly, and the
    reported certificate bounds the completeness error."""
    pair = pair_at(minilm, 3)
    done = integrate_adaptive(pair, 3, 1e-3, 1024)
    assert done.converged and done.rounds >= 1 and len(done.history) == done.rounds + 1
    assert done.nodes_a >= done.used_a > 8 and done.nodes_b >= done.used_b
    matrix = (done.e_a.T @ done.e_b) / pair.completeness.norm
    relative = pair.completeness.relative_error(float(matrix.double().sum()))
    assert relative <= 1e-3 * 1.01
    assert relative <= done.relative_bound * 1.01 + 1e-6  # the bound holds (tail vs model f: rounding)
    assert_matches_oracle(pair, done)


def test_explain_reports_the_adaptive_run(minilm: Any) -> None:
    res = explain(minilm, A, B, layer=3, pos=False)
    assert res.converged and res.error_bound is not None and res.error_bound >= 0
    assert abs(res.relative_error) <= 1e-3 * 1.01
    assert res.steps == res.error_by_steps[-1][0] and len(res.error_by_steps) >= 2
    assert res.error_by_steps[0][0] == auto_start("gauss-legendre", 3)  # round 0: today's first N
    round_trip = Attribution.from_dict(res.to_dict())
    assert round_trip.error_bound == res.error_bound
    old = res.to_dict()
    del old["error_bound"]  # a file written before the field
    assert Attribution.from_dict(old).error_bound is None
    fixed = explain(minilm, A, B, layer=3, steps=8, pos=False)
    assert fixed.error_bound is None


def test_round_zero_nodes_prefilled_in_the_cache_are_not_evaluated_again(
    minilm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """explain_many pre-fills round 0 (quadrature_nodes of auto_start) in batches: the adaptive rule must find them."""
    pair = pair_at(minilm, 5)
    nodes, _ = quadrature_nodes("gauss-legendre", auto_start("gauss-legendre", 5))
    pair.evaluator.evaluate(pair.a, nodes)
    pair.evaluator.evaluate(pair.b, nodes)
    calls: list[int] = []
    original = NodeEvaluator.__call__

    def spy(self: NodeEvaluator, path: Any, new: np.ndarray) -> torch.Tensor:
        calls.append(len(new))
        return original(self, path, new)

    monkeypatch.setattr(NodeEvaluator, "__call__", spy)
    done = integrate_adaptive(pair, 5, 1e-3, 1024)
    assert done.rounds == 0 and done.converged  # this pair converges in round 0 at the last layer
    assert calls == []
    done = integrate_adaptive(pair, 5, 1e-7, 1024)  # now it must refine: only new nodes are evaluated
    assert done.rounds >= 1 and calls and sum(calls) == done.nodes_a + done.nodes_b - 2 * len(nodes)


def test_not_converged_within_the_cap_says_what_to_do(minilm: Any) -> None:
    res = explain(minilm, "A man plays.", "Music.", layer=0, tolerance=1e-7, auto_max_steps=40, pos=False)
    assert not res.converged
    assert any("PAIRLENS_MAX_STEPS" in w and "tolerance" in w for w in res.warnings)
    assert res.steps <= 40 and res.error_bound is not None and res.error_bound > 1e-7


def test_the_cap_bounds_the_nodes_evaluated_per_text(minilm: Any) -> None:
    pair = pair_at(minilm, 0, "A man plays.", "Music.")
    done = integrate_adaptive(pair, 0, 1e-9, 70)
    assert not done.converged
    assert done.nodes_a <= 70 and done.nodes_b <= 70 and done.rounds >= 1


def test_d_f_da_first_spends_no_slice_on_a_node_the_mesh_drops(minilm: Any) -> None:
    """MiniLM layer 1, tolerance 1e-5: bisections happen. Giving new nodes d f / da first (one JVP, the slice's
    column sums) picks the same meshes, and slices go only to nodes of the final mesh (and round 0's); the
    certificate is the slices' own: recomputed from them alone it is the reported error and bound."""
    runs = {}
    for derive in ("none", "children", "all"):
        pair = pair_at(minilm, 1, "A man plays.", "Music.")
        runs[derive] = (pair, integrate_adaptive(pair, 1, 1e-5, 1024, derive=derive))
    _, plain = runs["none"]
    assert plain.converged and plain.derived == 0 and plain.rounds >= 3
    for derive in ("children", "all"):
        pair, done = runs[derive]
        assert done.converged and done.derived > 0
        for mesh, other in ((done.mesh_a, plain.mesh_a), (done.mesh_b, plain.mesh_b)):
            assert [(iv.lo, iv.hi, iv.size) for iv in mesh] == [(iv.lo, iv.hi, iv.size) for iv in other]
        assert done.nodes_a + done.nodes_b <= plain.nodes_a + plain.nodes_b
        m0 = auto_start("gauss-legendre", 1)
        for path, mesh in ((pair.a, done.mesh_a), (pair.b, done.mesh_b)):
            kept = {node_key(a) for a in mesh_rule(mesh)[0]}
            assert kept <= path.evaluated.keys()  # every node of the mesh has its slice
            if derive == "all":
                assert path.evaluated.keys() <= kept | {node_key(a) for a in quadrature_nodes("gauss-legendre", m0)[0]}
        fresh = [AdaptivePath(path, pair.evaluator) for path in (pair.a, pair.b)]  # residuals from slices alone
        sums = []
        for p, mesh in zip(fresh, (done.mesh_a, done.mesh_b), strict=True):
            copies = [Interval(iv.lo, iv.hi, iv.m, iv.kronrod) for iv in mesh]
            for iv in copies:
                p.residual(iv)
            sums.append(torch.stack([iv.residual for iv in copies]).sum(0))
        ends = [p.value([0.0, 1.0]) for p in fresh]
        deltas = [v[1] - v[0] for v in ends]
        exact, bound = pair_error(sums[0], sums[1], deltas[0], deltas[1], pair.completeness.norm)
        assert exact == pytest.approx(done.error, rel=1e-9, abs=1e-15) and bound == pytest.approx(done.bound, rel=1e-9)
        for got, want in ((done.e_a, plain.e_a), (done.e_b, plain.e_b)):  # same mesh, same slices: the same E
            assert float((got - want).abs().max()) <= 1e-6 * float(want.abs().max())
    with pytest.raises(ValueError, match="derive"):
        integrate_adaptive(runs["none"][0], 1, 1e-3, 64, derive="sometimes")


def test_a_lucky_cancellation_does_not_stop_the_exact_criterion() -> None:
    """all-mpnet-base-v2 at layer 6 once stopped after 12 nodes with an exact error of 8e-4 x |target| while the
    certified bound was 1.38 x |target| (R_a nearly orthogonal to Delta_b): the guard keeps such a run going."""
    goal = 1e-3
    assert not within_tolerance(8e-4, 1.38, goal)
    assert within_tolerance(8e-4, 0.9 * GUARD * goal, goal)
    assert not within_tolerance(2e-3, 2e-3, goal)
    assert within_tolerance(0.0, goal, goal, "bound") and not within_tolerance(0.0, 1.1 * goal, goal, "bound")


def test_a_converged_result_has_its_bound_within_the_guard(minilm: Any) -> None:
    for layer in (0, 3, 5):
        done = integrate_adaptive(pair_at(minilm, layer), layer, 1e-3, 1024)
        assert done.converged
        assert abs(done.error) <= 1e-3 * abs(done.target) and done.bound <= GUARD * 1e-3 * abs(done.target)


def test_bound_criterion_is_at_least_as_strict(minilm: Any) -> None:
    exact = integrate_adaptive(pair_at(minilm, 3), 3, 1e-3, 1024)
    bound = integrate_adaptive(pair_at(minilm, 3), 3, 1e-3, 1024, criterion="bound")
    assert bound.converged and bound.bound <= 1e-3 * abs(bound.target)
    assert bound.nodes_a + bound.nodes_b >= exact.nodes_a + exact.nodes_b


# ------------------------------------------------------------------------------------------------ every architecture


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_tiny_architecture_matches_the_oracle_on_its_mesh(tiny_models: Mapping[str, Path], arch: str) -> None:
    """At layer 0 (the hardest path, round 0 = G_32), tolerance 1e-4, at most 96 nodes per text: E equals the
    per-dimension oracle on the mesh the rule chose, and the rule either converges or refines up to the cap
    (some scaled random models need far more nodes: t5's and qwen3's layer-0 paths still have errors above 1
    at 36 nodes per text, xlm-roberta's max pooling has kinks)."""
    model = load_model(str(tiny_models[arch]))
    pair = pair_at(model, 0)
    done = integrate_adaptive(pair, 0, 1e-4, 96)
    assert_matches_oracle(pair, done)
    matrix = (done.e_a.T @ done.e_b) / pair.completeness.norm
    relative = pair.completeness.relative_error(float(matrix.double().sum()))
    if done.converged:
        assert relative <= 1e-4 * 1.5
    else:
        # it refined before stopping at the cap (not converging here is a property of these random paths)
        assert done.rounds >= 1 and max(done.nodes_a, done.nodes_b) > auto_start("gauss-legendre", 0)
