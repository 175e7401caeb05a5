"""The maths of the engine against exact oracles (brute-force autograd), on MiniLM and tiny models."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from oracle import per_dimension_integrated_jacobian

from attribution import InputError, explain, load_model
from attribution.core.engine import NodeEvaluator, prepare_path
from attribution.core.quadrature import auto_schedule, quadrature_nodes

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."


def encoder_forward_tail(model):  # type: ignore[no-untyped-def]
    """f from the embedding output through the HF encoder's own forward (independent of ours)."""

    def tail(x: torch.Tensor) -> torch.Tensor:
        out = model.encoder.encoder(x)
        last = out[0] if isinstance(out, tuple) else out.last_hidden_state
        return model.pool(last)

    return tail


def oracle_matrix(model, text_a: str, text_b: str, layer: int, rule: str, steps: int, mode: str = "approximate"):  # type: ignore[no-untyped-def]
    """A by per-dimension backward passes; at layer 0 through the encoder's own forward."""
    tail = encoder_forward_tail(model) if layer == 0 else model.tail(layer)
    nodes, weights = quadrature_nodes(rule, steps)
    es, embs = [], []
    for text in (text_a, text_b):
        path = prepare_path(model, text, layer, "")
        es.append(per_dimension_integrated_jacobian(tail, path.h, path.r, nodes, weights))
        embs.append(path.f - path.f_ref if mode == "exact" else path.f)
    norm = embs[0].norm() * embs[1].norm()
    return ((es[0].T @ es[1]) / norm).double().numpy()


def assert_close(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-5) -> None:
    scale = np.abs(expected).max()
    assert np.abs(actual - expected).max() <= rel * scale, np.abs(actual - expected).max() / scale


@pytest.mark.parametrize(
    ("layer", "rule", "steps"), [(0, "midpoint", 2), (3, "gauss-legendre", 4), (5, "riemann-right", 5)]
)
def test_matches_per_dimension_oracle(minilm, layer: int, rule: str, steps: int) -> None:
    a, b = ("A man plays.", "Music.") if layer == 0 else (A, B)  # 384 backward passes per text: keep it short
    res = explain(minilm, a, b, layer=layer, steps=steps, rule=rule, pos=False)
    assert res.matrix.shape == (len(res.a.tokens), len(res.b.tokens))
    assert_close(res.matrix, oracle_matrix(minilm, a, b, layer, rule, steps))


def test_reverse_mode_equals_forward_mode(minilm) -> None:  # type: ignore[no-untyped-def]
    fwd = explain(minilm, A, B, layer=4, steps=3, direction="forward", pos=False)
    rev = explain(minilm, A, B, layer=4, steps=3, direction="reverse", pos=False)
    assert_close(rev.matrix, fwd.matrix)


def test_hidden_states_are_the_model_path(minilm) -> None:  # type: ignore[no-untyped-def]
    """tail(h) reproduces f(text) and tail(r) f(reference): the path's end points are right."""
    for layer in (0, 3, minilm.num_layers):
        path = prepare_path(minilm, A, layer, "")
        tail = minilm.tail(layer)
        with torch.no_grad():
            assert torch.allclose(tail(path.h[None])[0], path.f, atol=1e-5)
            assert torch.allclose(tail(path.r[None])[0], path.f_ref, atol=1e-5)
    assert np.allclose(minilm.embed([A])[0], path.f.numpy(), atol=1e-6)


@pytest.mark.parametrize("rule", ["riemann-right", "midpoint", "gauss-legendre"])
@pytest.mark.parametrize("layer", [0, 3])
def test_integration_error_shrinks_with_steps(minilm, rule: str, layer: int) -> None:
    steps = (4, 16, 64) if rule != "gauss-legendre" else (4, 16, 48)
    errors = [abs(explain(minilm, A, B, layer=layer, steps=n, rule=rule, pos=False).relative_error) for n in steps]
    assert errors[-1] < errors[0]
    assert errors[-1] < 2e-2


def test_auto_reaches_tolerance_and_reports_steps(minilm) -> None:  # type: ignore[no-untyped-def]
    res = explain(minilm, A, B, steps="auto", tolerance=1e-3, pos=False)
    assert res.converged and abs(res.integration_error) <= 1e-3 * abs(res.target)
    assert res.steps == res.error_by_steps[-1][0]
    assert res.attribution_sum == pytest.approx(res.matrix.sum())
    assert res.reference_terms == pytest.approx(res.score - res.target)


def test_auto_reuses_nested_nodes(minilm) -> None:  # type: ignore[no-untyped-def]
    """Midpoint refines by tripling: the nodes of N are a subset of those of 3N."""
    res = explain(minilm, A, B, layer=0, steps="auto", rule="midpoint", pos=False)
    assert [n for n, _ in res.error_by_steps][:2] == [3, 9]
    fixed = explain(minilm, A, B, layer=0, steps=res.steps, rule="midpoint", pos=False)
    assert_close(res.matrix, fixed.matrix)


def test_exact_mode_explains_the_whole_score(minilm) -> None:  # type: ignore[no-untyped-def]
    res = explain(minilm, A, B, mode="exact", pos=False)
    assert res.reference_terms == 0.0
    assert res.target == res.score
    assert abs(res.integration_error) <= 1e-3 * abs(res.score)
    assert_close(res.matrix, oracle_matrix(minilm, A, B, res.layer, res.rule, res.steps, mode="exact"))


def test_approximate_cosine_score_is_the_models_own(minilm) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(minilm.source, device="cpu")
    emb = st.encode([A, B], convert_to_tensor=True)
    expected = float(torch.nn.functional.cosine_similarity(emb[0:1], emb[1:2])[0])
    assert explain(minilm, A, B, pos=False).score == pytest.approx(expected, abs=1e-5)


def test_swapping_texts_transposes(minilm) -> None:  # type: ignore[no-untyped-def]
    ab = explain(minilm, A, B, steps=8, pos=False)
    ba = explain(minilm, B, A, steps=8, pos=False)
    assert np.allclose(ba.matrix, ab.matrix.T, atol=1e-7)
    assert ba.a.tokens == ab.b.tokens


def test_last_layer_one_node_is_closed_form(minilm) -> None:  # type: ignore[no-untyped-def]
    """At L = number of layers only mean pooling remains: E[:, i] = (h - r)[i] / S exactly."""
    res = explain(minilm, A, B, layer=minilm.num_layers, steps=1, pos=False)
    pa = prepare_path(minilm, A, minilm.num_layers, "")
    pb = prepare_path(minilm, B, minilm.num_layers, "")
    ea = ((pa.h - pa.r) / pa.h.shape[0]).double()
    eb = ((pb.h - pb.r) / pb.h.shape[0]).double()
    closed = (ea @ eb.T).numpy() / float(pa.f.norm() * pb.f.norm())
    assert_close(res.matrix, closed)
    assert abs(res.relative_error) < 1e-5


def test_display_tokens_have_no_artefacts(minilm) -> None:  # type: ignore[no-untyped-def]
    res = explain(minilm, "Unbelievably, tokenization works.", "It works.", steps=2, pos=False)
    assert not any(t.startswith("##") for t in res.a.tokens)
    assert res.a.tokens[0] == "[CLS]" and res.a.tokens[-1] == "[SEP]"
    assert res.a.special[0] and res.a.special[-1] and not any(res.a.special[1:-1])


def test_long_text_is_truncated_and_flagged(minilm) -> None:  # type: ignore[no-untyped-def]
    long_text = "word " * 400
    with pytest.warns(UserWarning, match="truncated"):
        res = explain(minilm, long_text, B, layer=minilm.num_layers, steps=1, pos=False)
    assert res.a.truncated and not res.b.truncated
    assert len(res.a.tokens) == minilm.max_tokens
    assert any("truncated" in w for w in res.warnings)


def test_concurrent_calls_equal_sequential(minilm) -> None:  # type: ignore[no-untyped-def]
    pairs = [(A, B), (B, A), ("The cat sleeps.", "A dog runs."), (A, "Stocks fell sharply.")]
    expected = [explain(minilm, a, b, steps=4, pos=False).matrix for a, b in pairs]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        a, b = pairs[k % len(pairs)]
        got[k] = explain(minilm, a, b, steps=4, pos=False).matrix

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "a thread still runs after 600 s"
    for k in range(8):
        assert np.allclose(got[k], expected[k % len(pairs)], atol=1e-6)


def test_no_hooks_or_state_left_after_an_error(minilm) -> None:  # type: ignore[no-untyped-def]
    def hook_count() -> int:
        return sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in minilm.encoder.modules()
        )

    from torch.autograd import forward_ad

    from attribution.models import LoadedModel

    real_tail = LoadedModel.tail
    calls = 0

    def failing_tail(self: LoadedModel, layer: int):  # type: ignore[no-untyped-def]
        inner = real_tail(self, layer)

        def tail(x: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            calls += 1
            if calls == 2:  # inside the vmapped jvp of the second text
                raise RuntimeError("out of memory (simulated)")
            return inner(x)

        return tail

    before, grad_mode = hook_count(), torch.is_grad_enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LoadedModel, "tail", failing_tail)
        patch.setattr(NodeEvaluator, "use_structured", False)  # the generic vmapped jvp calls the tail
        with pytest.raises(RuntimeError, match="simulated"):
            explain(minilm, A, B, steps=2, pos=False)
    assert calls == 2  # it failed inside differentiation, not at validation
    assert hook_count() == before and torch.is_grad_enabled() == grad_mode
    assert forward_ad._current_level == -1  # no dual level left open
    assert all(not p.requires_grad or p.grad is None for p in minilm.encoder.parameters())
    assert explain(minilm, A, B, steps=2, pos=False).converged  # the differentiation lock was released


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text_a": ""}, "empty"),
        ({"text_a": "   \n\t"}, "empty"),
        ({"layer": -1}, "layer"),
        ({"layer": 7}, "layer"),
        ({"steps": 0}, "steps"),
        ({"steps": 1025}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"rule": "simpson"}, "rule"),
        ({"mode": "precise"}, "mode"),
        ({"similarity": "euclidean"}, "similarity"),
        ({"tolerance": 0}, "tolerance"),
    ],
)
def test_bad_input_says_what_to_do(minilm, kwargs: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    args = {"text_a": A, "text_b": B} | kwargs
    with pytest.raises(InputError, match=message):
        explain(minilm, args.pop("text_a"), args.pop("text_b"), pos=False, **args)


def test_cls_pooling_dense_and_dot_product(tiny_models) -> None:  # type: ignore[no-untyped-def]
    model = load_model(str(tiny_models["bert-cls-dot"]))
    assert (model.pooling, model.similarity, len(model.pooling_modules)) == ("cls", "dot", 2)  # Pooling, Dense
    res = explain(model, A, B, layer=0, steps=4, pos=False)
    assert res.similarity == "dot"
    assert res.score == pytest.approx(float(model.embed([A])[0] @ model.embed([B])[0]), rel=1e-5)
    assert_close(
        res.matrix,
        oracle_matrix(model, A, B, 0, res.rule, 4)
        * float(np.linalg.norm(model.embed([A])[0]) * np.linalg.norm(model.embed([B])[0])),
    )


def test_models_load_once(minilm) -> None:  # type: ignore[no-untyped-def]
    assert load_model("all-MiniLM-L6-v2") is minilm
    assert load_model("sentence-transformers/all-MiniLM-L6-v2") is minilm


def test_auto_schedules_start_where_rounds_can_stop_and_end_at_the_cap() -> None:
    assert auto_schedule("gauss-legendre", 1024, layer=5) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert auto_schedule("gauss-legendre", 1024, layer=0) == [32, 64, 128, 256, 512, 1024]
    assert auto_schedule("midpoint", 1024, layer=0) == [3, 9, 27, 81, 243, 729, 1024]
    assert auto_schedule("riemann-right", 20, layer=3) == [4, 8, 16, 20]
    assert auto_schedule("gauss-legendre", 4, layer=0) == [4]
