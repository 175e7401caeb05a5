"""Every supported architecture entered at every layer, every pooling mode, prompts and refusals (issue 12).

The oracle is independent of the way PairLens enters a model: the HF model's full forward with x put
in place of layer L's input by a hook (tests only; the library adds no hooks), then sentence-transformers'
own head, differentiated by one backward pass per embedding dimension. For DeBERTa-v2 at L = 0 the hook
replaces the embeddings' output instead, since its conv after layer 0 reads that output too.

Tiny models run single-threaded here: on two shared cores, intra-op threads on 32-wide matrices cost
far more in contention than they gain.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from oracle import per_dimension_integrated_jacobian
from tiny_models import ARCHITECTURES, SPECS

from attribution import InputError, ModelError, explain
from attribution.core.engine import prepare_path
from attribution.core.quadrature import quadrature_nodes
from attribution.core.tokens import encode_text, pad_id, reference_ids, reference_token_ids
from attribution.models import LoadedModel, load_model
from attribution.models.registry import _describe, _load_uncached, architecture_of

A = "A man is playing a guitar on stage."
B = "Someone performs music."
RULE, STEPS = "gauss-legendre", 2
EAGER = {"attn_implementation": "eager"}
POOLING_VARIANTS = ("bert-cls", "bert-max", "bert-lasttoken", "bert-weightedmean", "bert-mean_sqrt_len_tokens")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hooked_tail(model: LoadedModel, layer: int, input_ids: torch.Tensor) -> Any:
    """f from layer L: the HF model's own full forward with x in place of layer L's input, then the head."""
    entry = model.entry
    layers = entry.hf.get_submodule(entry.layers_path)

    def tail(x: torch.Tensor) -> torch.Tensor:
        if layer == model.num_layers:
            return model.pool(x.clone())  # sentence-transformers 3.x's max pooling writes into its input

        def swap(_module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (x, *args[1:]), kwargs
            key = next(k for k in ("hidden_states", "hidden_state", "x") if k in kwargs)
            return args, {**kwargs, key: x}

        if layer == 0 and model.architecture == "deberta-v2":  # its conv after layer 0 reads the embeddings too
            handle = entry.hf.get_submodule("embeddings").register_forward_hook(lambda *_: x)
        else:
            handle = layers[layer].register_forward_pre_hook(swap, with_kwargs=True)
        try:
            ids = input_ids.expand(x.shape[0], -1)
            states = entry.hf(input_ids=ids, attention_mask=torch.ones_like(ids), **entry.fixed_kwargs)
        finally:
            handle.remove()
        return model.pool(states.last_hidden_state)

    return tail


def oracle_matrix(model: LoadedModel, layer: int, text_a: str = A, text_b: str = B) -> np.ndarray:
    """A (approximate mode) for RULE/STEPS by the hooked full forward and per-dimension backward passes."""
    nodes, weights = quadrature_nodes(RULE, STEPS)
    es, embs = [], []
    for text in (text_a, text_b):
        path = prepare_path(model, text, layer, "")
        tail = hooked_tail(model, layer, path.tokens.input_ids)
        es.append(per_dimension_integrated_jacobian(tail, path.h, path.r, nodes, weights))
        embs.append(path.f)
    norm = embs[0].norm() * embs[1].norm() if model.similarity == "cos" else torch.tensor(1.0)
    return ((es[0].T @ es[1]) / norm).double().numpy()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def st_similarity(source: Path, text_a: str, text_b: str, **encode: Any) -> float:
    """sentence-transformers' own similarity of the two texts (its encode and similarity function)."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    emb = st.encode([text_a, text_b], convert_to_tensor=True, **encode)
    return float(st.similarity(emb[0:1], emb[1:2])[0, 0])


@pytest.fixture(scope="module")
def loaded(tiny_models: Mapping[str, Path]) -> Any:
    """Tiny models loaded through load_model, by name (each once per module)."""
    cache: dict[str, LoadedModel] = {}

    def get(name: str) -> LoadedModel:
        if name not in cache:
            cache[name] = load_model(str(tiny_models[name]))
        return cache[name]

    return get


# ------------------------------------------------------------------------------- every architecture x every layer


def test_every_tested_architecture_has_a_tiny_model() -> None:
    from attribution.models import TESTED_ARCHITECTURES

    assert set(TESTED_ARCHITECTURES) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_layer_matches_the_oracle(loaded: Any, arch: str) -> None:
    """explain() at every layer 0..num_layers equals the independent oracle within 1e-5 relative."""
    model = loaded(arch)
    assert model.architecture == arch and model.pooling == SPECS[arch].pooling
    errors = []
    for layer in range(model.num_layers + 1):
        res = explain(model, A, B, layer=layer, steps=STEPS, rule=RULE, pos=False)
        assert res.layer == layer and res.num_layers == model.num_layers
        errors.append(relative_error(res.matrix, oracle_matrix(model, layer)))
    assert max(errors) <= 1e-5, errors


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_score_and_reference_are_the_models_own(tiny_models: Mapping[str, Path], loaded: Any, arch: str) -> None:
    """The score is sentence-transformers' similarity; the reference keeps specials, pads everything else."""
    model = loaded(arch)
    res = explain(model, A, B, layer=model.num_layers, steps=1, pos=False)
    assert res.score == pytest.approx(st_similarity(tiny_models[arch], A, B), abs=2e-5)
    tokens = encode_text(model, A)
    ref = reference_ids(tokens, model.tokenizer)[0].tolist()
    ids = tokens.input_ids[0].tolist()
    assert any(tokens.special) and not all(tokens.special)
    for i, (token, is_special) in enumerate(zip(ids, tokens.special, strict=True)):
        assert ref[i] == (token if is_special else pad_id(model.tokenizer))
    assert not any(t.startswith(("Ġ", "##", "▁")) for t in res.a.tokens)


# ------------------------------------------------------------------------------- pooling modes and heads


@pytest.mark.parametrize("name", [*POOLING_VARIANTS, "bert-cls-dot"])
def test_every_pooling_mode_with_dense(tiny_models: Mapping[str, Path], loaded: Any, name: str) -> None:
    """cls, max, lasttoken, weightedmean, mean_sqrt_len_tokens (mean: the architecture tests), each with a
    Dense (tanh) module and Normalize, or with dot product and no Normalize: oracle and score."""
    model = loaded(name)
    assert model.pooling == (name.split("-", 1)[1] if name != "bert-cls-dot" else "cls")
    assert [type(m).__name__ for m in model.pooling_modules] == ["Pooling", "Dense"]
    res = explain(model, A, B, layer=1, steps=STEPS, rule=RULE, pos=False)
    assert relative_error(res.matrix, oracle_matrix(model, 1)) <= 1e-5
    assert res.score == pytest.approx(st_similarity(tiny_models[name], A, B), rel=1e-5, abs=1e-6)
    assert res.similarity == ("dot" if name == "bert-cls-dot" else "cos")


# ------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("name", ["nomic_bert", "qwen3", "gemma3_text", "gemma3_text-exclude-prompt"])
def test_prompts_as_sentence_transformers_applies_them(tiny_models: Mapping[str, Path], loaded: Any, name: str) -> None:
    """prompt_name prepends the model's prompt to both texts: the score is encode(prompt_name=...)'s, the
    prompt tokens are flagged and kept in the reference, and the attributions match the oracle."""
    model = loaded(name)
    res = explain(model, A, B, layer=1, steps=STEPS, rule=RULE, prompt_name="query", pos=False)
    assert res.score == pytest.approx(st_similarity(tiny_models[name], A, B, prompt_name="query"), abs=2e-5)
    prompted = model.prompted("query")
    assert prompted.prompt == model.prompts["query"] and prompted.entry is model.entry
    assert relative_error(res.matrix, oracle_matrix(prompted, 1)) <= 1e-5
    for side, text in ((res.a, A), (res.b, B)):
        assert len(side.prompt) == len(side.tokens) and any(side.prompt)
        first = side.prompt.index(True)
        count = sum(side.prompt)
        assert side.prompt[first : first + count] == [True] * count  # one span, at the start (after a BOS/CLS)
        assert not any(side.special[first : first + count])
        assert all(o == (0, 0) for o in side.offsets[first : first + count])
        assert side.text == text  # the prompt is not part of the text
    tokens = encode_text(prompted, A)
    ref = reference_ids(tokens, model.tokenizer)[0].tolist()
    ids = tokens.input_ids[0].tolist()
    for i, token in enumerate(ids):
        kept = tokens.special[i] or tokens.prompt[i]
        assert ref[i] == (token if kept else pad_id(model.tokenizer))


def test_prompt_length_quirk_follows_sentence_transformers(tiny_models: Mapping[str, Path], loaded: Any) -> None:
    """Byte-level BPE merges the prompt's trailing space into the first word ('Ġ' alone, 'Ġman' in the text):
    sentence-transformers' prompt length then counts that word, so Pooling(include_prompt=False) leaves it
    out. PairLens pools as sentence-transformers does but flags only the true prefix as prompt."""
    name = "gemma3_text-exclude-prompt"
    model = loaded(name)
    text = "man is playing a guitar."
    tokens = encode_text(model.prompted("query"), text)
    assert model.tokenizer.convert_ids_to_tokens(tokens.input_ids[0].tolist())[11] == "Ġman"
    leading_specials = 1  # <bos>
    prompt_length = model.prompted("query").prompt_length
    assert prompt_length == sum(tokens.prompt) + leading_specials + 1
    assert not tokens.prompt[prompt_length - 1]  # the text's first word, pooled out by ST's count
    res = explain(model, text, B, layer=1, steps=STEPS, rule=RULE, prompt_name="query", pos=False)
    assert res.a.tokens[11] == "man" and not res.a.prompt[11]
    assert res.score == pytest.approx(st_similarity(tiny_models[name], text, B, prompt_name="query"), abs=2e-5)


def test_explicit_prompt_default_prompt_and_errors(tiny_models: Mapping[str, Path], loaded: Any) -> None:
    from sentence_transformers import SentenceTransformer

    bert = loaded("bert")
    res = explain(bert, A, B, layer=1, steps=STEPS, prompt="query: ", pos=False)
    assert res.a.tokens[:3] == ["[CLS]", "query", ":"] and res.a.prompt[:4] == [False, True, True, False]
    assert res.score == pytest.approx(st_similarity(tiny_models["bert"], A, B, prompt="query: "), abs=2e-5)
    assert relative_error(res.matrix, oracle_matrix(bert.prompted(prompt="query: "), 1)) <= 1e-5
    with pytest.raises(InputError, match=r"no prompt named 'passage'.*'query', 'document'"):
        explain(loaded("qwen3"), A, B, prompt_name="passage", pos=False)
    with pytest.raises(InputError, match="not both"):
        explain(bert, A, B, prompt_name="query", prompt="query: ", pos=False)
    with pytest.raises(InputError, match="no room left after the prompt"):
        explain(bert, A, B, prompt="word " * 200, steps=1, pos=False)

    source = str(tiny_models["nomic_bert"])
    st = SentenceTransformer(
        source, device="cpu", local_files_only=True, default_prompt_name="query", model_kwargs=EAGER
    ).eval()
    default = _describe("nomic-default", source, st)
    with_default = explain(default, A, B, layer=1, steps=STEPS, pos=False)
    named = explain(default, A, B, layer=1, steps=STEPS, prompt_name="query", pos=False)
    assert with_default.a.tokens == named.a.tokens and np.array_equal(with_default.matrix, named.matrix)
    encoded = st.encode([A, B], convert_to_tensor=True)
    assert with_default.score == pytest.approx(float(st.similarity(encoded[0:1], encoded[1:2])[0, 0]), abs=2e-5)
    none = explain(default, A, B, layer=1, steps=STEPS, prompt="", pos=False)  # "" overrides the default
    assert not any(none.a.prompt) and len(none.a.tokens) < len(named.a.tokens)


def test_prompt_rows_are_hidden_like_special_rows(loaded: Any) -> None:
    """Views drop prompt rows with the special ones; annotation keeps prompt tokens out of the words; the
    JSON round trip keeps the flags."""
    from attribution.result import Attribution, without_special_tokens

    res = explain(loaded("bert"), A, B, layer=1, steps=STEPS, prompt="search query: ", pos=True)
    hidden = without_special_tokens(res)
    assert hidden.a.tokens == [t for t, s, p in zip(res.a.tokens, res.a.special, res.a.prompt, strict=True)
                               if not (s or p)]  # fmt: skip
    assert res.a.word_index is not None
    assert all(w == -1 for w, p in zip(res.a.word_index, res.a.prompt, strict=True) if p)
    assert res.a.words is not None and "search" not in res.a.words
    words = res.to_words()
    assert words.a.tokens[0] == "A" and not any(words.a.prompt)
    assert words.matrix.sum() + words.special_share * words.attribution_sum == pytest.approx(res.attribution_sum)
    kept = res.to_words(keep_special=True)
    assert kept.a.tokens[:3] == ["[CLS]", "search", "query"] and kept.a.prompt[:4] == [False, True, True, True]
    assert kept.matrix.sum() == pytest.approx(res.attribution_sum)
    again = Attribution.from_dict(res.to_dict())
    assert again == res and again.a.prompt == res.a.prompt
    assert res.to_dict()["prompt_a"] == res.a.prompt


# ------------------------------------------------------------------------------- refusals


def _st(tiny_models: Mapping[str, Path], name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_models[name]), device="cpu", local_files_only=True, model_kwargs=EAGER).eval()


def test_encoder_decoders_are_refused(tiny_models: Mapping[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"encoder-decoder.*T5EncoderModel"):
        load_model(str(tiny_models["bart"]))


def test_static_embeddings_are_refused(tiny_models: Mapping[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer
    from st_modules import st_module

    StaticEmbedding = st_module("StaticEmbedding")

    st = SentenceTransformer(modules=[StaticEmbedding(_st(tiny_models, "roberta").tokenizer, embedding_dim=16)])
    with pytest.raises(ModelError, match=r"StaticEmbedding.*no encoder layers.*PairLens supports"):
        _describe("static", "static", st)


def test_remote_code_is_refused(tiny_models: Mapping[str, Path]) -> None:
    st = _st(tiny_models, "bert")
    hf = st[0].auto_model
    hf.__class__ = type("RemoteBertModel", (type(hf),), {"__module__": "transformers_modules.someone.bert"})
    with pytest.raises(ModelError, match=r"custom modelling code.*never runs remote code.*tested: bert"):
        _describe("remote", "remote", st)


def test_unsupported_heads_and_architectures_are_refused(tiny_models: Mapping[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer
    from st_modules import st_module

    Dense, Normalize = st_module("Dense"), st_module("Normalize")

    st = _st(tiny_models, "bert")
    after = SentenceTransformer(modules=[st[0], st[1], Normalize(), Dense(32, 8)], device="cpu").eval()
    with pytest.raises(ModelError, match="Dense module after Normalize"):
        _describe("dense-after", "x", after)
    with pytest.raises(ModelError, match="no Pooling module"):
        _describe("no-pooling", "x", SentenceTransformer(modules=[st[0], Normalize()], device="cpu").eval())
    with pytest.raises(ModelError, match="training mode"):
        _describe("train", "x", _st(tiny_models, "bert").train())
    sdpa = SentenceTransformer(str(tiny_models["bert"]), device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    with pytest.raises(ModelError, match="eager"):
        _describe("sdpa", "x", sdpa.eval())
    ple = _st(tiny_models, "bert")
    ple[0].auto_model.config.model_type = "gemma3n_text"
    with pytest.raises(ModelError, match="per-layer inputs"):
        _describe("ple", "x", ple)


@pytest.mark.parametrize("arch", ["deberta-v2", "t5", "electra"])
def test_load_time_self_check_catches_a_missing_fact(
    tiny_models: Mapping[str, Path], arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: without its ENTRY_FACTS row, entering the model at some layer is wrong, and the
    check at every layer refuses the model instead of explaining it wrongly."""
    from attribution.models import entry

    monkeypatch.delitem(entry.ENTRY_FACTS, arch)
    with pytest.raises(ModelError, match=r"at layer\(s\) \[|does not reproduce"):
        _load_uncached(arch, str(tiny_models[arch]))


def test_load_time_self_check_catches_unsliced_layer_types(
    tiny_models: Mapping[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: Qwen3's per-layer attention types must be sliced with its layers."""
    from attribution.models import entry

    monkeypatch.setattr(entry, "_trimmed_config", lambda config, start, total: config)
    with pytest.raises(ModelError, match="does not reproduce"):
        _load_uncached("qwen3", str(tiny_models["qwen3"]))


def test_reference_filler_is_pad_else_unk() -> None:
    class Tok:
        pad_token_id: int | None = None
        unk_token_id: int | None = 7

    assert reference_token_ids([1, 5, 6, 2], [True, False, False, True], Tok()) == [1, 7, 7, 2]
    assert reference_token_ids([1, 5, 6, 2], [True, False, False, True], Tok(), [False, True, False, False]) == [
        1, 5, 7, 2,
    ]  # fmt: skip
    Tok.unk_token_id = None
    with pytest.raises(InputError, match=r"set tokenizer.pad_token"):
        reference_token_ids([1, 5], [True, False], Tok())


# ------------------------------------------------------------------------------- model facts, threads, state


def test_model_facts_and_picker_architecture(tiny_models: Mapping[str, Path], loaded: Any) -> None:
    t5 = loaded("t5")
    assert (t5.num_layers, t5.hidden_size, t5.embedding_dim) == (3, 32, 24)
    assert t5.sequence_bytes(10) == 2 * 4 * (10 * (10 * 32 + 3 * 64) + 4 * 4 * 100)  # d_ff, num_heads
    distil = loaded("distilbert")
    assert distil.sequence_bytes(10) == 2 * 4 * (10 * (10 * 32 + 3 * 64) + 4 * 4 * 100)  # hidden_dim, n_heads
    for arch in ("t5", "qwen3", "distilbert"):
        assert architecture_of(tiny_models[arch]) == arch
    assert architecture_of(tiny_models["t5"].parent) is None  # no modules.json


def test_threads_share_models_and_nothing_shared_changes(loaded: Any) -> None:
    """Explanations of several architectures and layers at once equal the sequential ones; the models' layer
    lists, configs and hooks are untouched."""
    jobs = [("qwen3", 1), ("gemma3_text", 0), ("t5", 2), ("deberta-v2", 1), ("qwen3", 2), ("modernbert", 1)]

    def state(model: LoadedModel) -> tuple:
        hf = model.entry.hf
        return (
            tuple(id(m) for m in hf.get_submodule(model.entry.layers_path)),
            tuple((n, id(m)) for n, m in hf.named_children()),
            repr(hf.config.to_dict()),
            sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in hf.modules()),
        )

    expected = [explain(loaded(a), A, B, layer=layer, steps=STEPS, pos=False).matrix for a, layer in jobs]
    before = {a: state(loaded(a)) for a, _ in jobs}
    got: dict[int, np.ndarray] = {}
    failures: list[BaseException] = []

    def work(k: int) -> None:
        try:
            arch, layer = jobs[k % len(jobs)]
            got[k] = explain(loaded(arch), A, B, layer=layer, steps=STEPS, pos=False).matrix
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2 * len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "a thread still runs after 600 s"
    assert not failures, failures
    for k, matrix in got.items():
        assert relative_error(matrix, expected[k % len(jobs)]) <= 1e-5
    assert {a: state(loaded(a)) for a, _ in jobs} == before


def test_cli_prompt_options(tiny_models: Mapping[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from attribution.cli import main

    folder = str(tiny_models["qwen3"])
    args = ["explain", A, B, "--model", folder, "--layer", "1", "--steps", "1", "--json"]
    assert main([*args, "--prompt-name", "query"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert any(payload["prompt_a"]) and any(payload["prompt_b"]) and not any(payload["special_a"][:1])
    assert main([*args, "--prompt-name", "passage"]) == 2
    assert "no prompt named 'passage'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--prompt-name", "query", "--prompt", "x: "])  # argparse: not both


def test_page_state_carries_the_prompt() -> None:
    pytest.importorskip("components.state", reason="the page's code is not importable (make compat tests the wheel)")
    from components.state import PageState, from_session, parse_query, to_query, to_session

    state, notices = parse_query({"prompt_name": [" query "], "prompt": ["search: "]}, [])
    assert (state.prompt_name, state.options.prompt, notices) == ("query", "search: ", [])
    assert (state.options.prompt_name, state.options.prompt) == (None, "search: ")  # the typed text wins
    named = from_session({"prompt_name": " query ", "prompt": ""}).options  # what the two boxes give explain()
    assert (named.prompt_name, named.prompt) == ("query", None)
    assert (PageState().options.prompt_name, PageState().options.prompt) == (None, None)
    assert parse_query(to_query(state), [])[0].options.prompt == "search: "
    assert from_session(to_session(state)).prompt_name == "query"
    assert "prompt" not in to_query(PageState())  # links without a prompt stay as they were
