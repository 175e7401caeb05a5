"""explain_many: many text pairs at once, the first round's node evaluations shared by texts of equal length.

explain() handles one pair: two encoder forwards per text and small vmapped JVP calls per round.
Here, for a list of pairs:

1. every unique text is tokenized once; the hidden states of all texts of one length come from
   one encoder forward per batch, and each distinct reference input is run once (for BERT-like
   tokenizers the reference depends on the length only);
2. the first round's nodes (the fixed N, or steps="auto"'s round 0: `quadrature_nodes(rule,
   auto_start(rule, layer))`) are evaluated for all texts of one length S in shared calls: one
   batch item per (text, node), x and delta of shape (B, S, H) -> slices (B, D, S), by
   vmap(jvp) where tangent t of item b is delta_b on row t; calls are cut to the memory budget;
3. the slices go into each text's `TextPath.evaluated` (texts shared by several pairs share
   one path), and each pair is finished by the engine's own `integrate` / `explain_prepared`,
   which finds the first round cached and evaluates any later round itself.

So every result equals explain()'s for the same pair and options up to float rounding (batched
matmuls), whatever rule `integrate` applies. Texts the engine would differentiate in reverse
mode (more tokens than embedding dimensions, or direction="reverse") are left to `integrate`.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import jvp, vmap

from ..errors import InputError
from ..models import LoadedModel
from ..result import Attribution
from .completeness import completeness
from .engine import NodeEvaluator, PairPaths, TextPath, explain_prepared, resolve
from .execution import Run
from .jacobian import Tail
from .options import ExplainOptions, Limits, RunOptions
from .quadrature import auto_start, node_key, quadrature_nodes
from .tokens import TokenizedText, check_text, encode_text, reference_token_ids

PairProgress = Callable[[int, int], None]  # (pairs finished, pairs in all)
ENCODE_BATCH = 64  # texts per encoder forward when preparing states


@dataclass(frozen=True)
class _Side:
    """One text of one pair after the checks: its cleaned text, or the InputError it gave."""

    text: str | None
    error: InputError | None


def explain_many(
    model: LoadedModel | str,
    pairs: Sequence[tuple[str, str]],
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = False,
    run: Run | None = None,
    progress: PairProgress | None = None,
    limits: Limits | None = None,
    **option_values: Any,
) -> list[Attribution]:
    """explain() for every (text_a, text_b) in `pairs`, sharing work across pairs; results in input order.

    Options as for explain() (an ExplainOptions or its fields by keyword). A pair explain() would
    refuse (an empty text, ...) is an InputError naming its index, raised before anything is
    computed; `explain_outcomes` reports such pairs one by one instead. pos: annotate words and
    POS tags. run: cancellation and the differentiation gate (raises Cancelled). progress: called
    with (pairs finished, pairs in all). Each result's `seconds` is its own integration plus an
    equal share of the batched work. No PairLensWarning is emitted (one per pair would flood a
    corpus run): truncation and non-convergence notes are in each result's `warnings`.
    """
    pairs = _pair_list(pairs)
    outcomes = explain_outcomes(
        model, pairs, options, pos=pos, run=run, progress=progress, check_first=True, limits=limits, **option_values
    )
    return [o for o in outcomes if isinstance(o, Attribution)]


def explain_outcomes(
    model: LoadedModel | str,
    pairs: Sequence[tuple[str, str]],
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = False,
    run: Run | None = None,
    progress: PairProgress | None = None,
    check_first: bool = False,
    limits: Limits | None = None,
    **option_values: Any,
) -> list[Attribution | InputError]:
    """explain_many, with each pair's refusal (InputError, as explain() raises it) in its place.

    check_first: raise the first refusal instead (as InputError "Pair i: ..."), before computing.
    """
    pairs = _pair_list(pairs)
    loaded, resolved = resolve(model, options, option_values, limits)
    run = run or Run()
    run.check()
    started = time.perf_counter()
    prompted = loaded.prompted(prompt=resolved.prompt)

    sides = [(_check(a, "A", resolved.max_text_chars), _check(b, "B", resolved.max_text_chars)) for a, b in pairs]
    texts = [s.text for pair in sides for s in pair if s.text is not None]
    tokens, refused = _tokenize(prompted, texts, resolved.max_tokens)
    outcomes: list[Attribution | InputError | None] = [None] * len(pairs)
    for index, pair in enumerate(sides):
        for side, label in zip(pair, "AB", strict=True):
            if side.error is not None or side.text in refused:
                error = side.error or _encode_error(prompted, side.text or "", label, resolved.max_tokens)
                if check_first:
                    raise InputError(f"Pair {index}: {error}") from None
                outcomes[index] = error
                break

    wanted = [i for i, o in enumerate(outcomes) if o is None]
    used = {s.text for i in wanted for s in sides[i] if s.text is not None}
    paths = _prepare_paths(prompted, {t: tokens[t] for t in tokens if t in used}, resolved.layer)
    evaluator = NodeEvaluator(prompted, resolved, run)
    if resolved.precision == "fp32":  # bf16 nodes are evaluated by integrate(), under its autocast
        _first_round(evaluator, list(paths.values()), resolved)
    shared = (time.perf_counter() - started) / max(1, len(wanted))

    finished = len(pairs) - len(wanted)
    if progress is not None and finished:
        progress(finished, len(pairs))
    for index in wanted:
        run.check()
        text_a, text_b = (s.text for s in sides[index])
        assert text_a is not None and text_b is not None
        path_a, path_b = paths[text_a], paths[text_b]
        check = completeness(path_a.f, path_a.f_ref, path_b.f, path_b.f_ref, resolved.mode, resolved.similarity)
        prepared = PairPaths(path_a, path_b, check, evaluator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one warning per pair would flood; kept in result.warnings
            result = explain_prepared(loaded, prepared, resolved, started=time.perf_counter() - shared, pos=pos)
        outcomes[index] = result
        finished += 1
        if progress is not None:
            progress(finished, len(pairs))
    return [o for o in outcomes if o is not None]


# ----------------------------------------------------------------------------- preparation


def _pair_list(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InputError("pairs must be a list of (text_a, text_b) tuples.")
    out = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"Pair {index} must be a (text_a, text_b) tuple, not {type(pair).__name__}.")
        out.append((pair[0], pair[1]))
    return out


def _check(text: object, label: str, max_chars: int) -> _Side:
    try:
        return _Side(check_text(text, label, max_chars), None)
    except InputError as exc:
        return _Side(None, exc)


def _encode_error(model: LoadedModel, text: str, label: str, max_tokens: int) -> InputError:
    """The InputError encode_text gives this text under this label (refused texts are rare: re-run)."""
    try:
        encode_text(model, text, label, max_tokens)
    except InputError as exc:
        return exc
    raise AssertionError("a refused text was accepted on the second try")


def _tokenize(model: LoadedModel, texts: Sequence[str], max_tokens: int) -> tuple[dict[str, TokenizedText], set[str]]:
    """Each unique text tokenized once: (tokens by text, texts the tokenizer refused)."""
    tokens: dict[str, TokenizedText] = {}
    refused: set[str] = set()
    for text in dict.fromkeys(texts):
        try:
            tokens[text] = encode_text(model, text, "", max_tokens)
        except InputError:
            refused.add(text)
    return tokens, refused


def _prepare_paths(model: LoadedModel, tokens: dict[str, TokenizedText], layer: int) -> dict[str, TextPath]:
    """Each text's path at `layer`: one encoder forward per (length, batch), one per distinct reference."""
    by_length: dict[int, list[str]] = defaultdict(list)
    for text, tok in tokens.items():
        by_length[tok.input_ids.shape[1]].append(text)
    references: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
    paths: dict[str, TextPath] = {}
    with torch.no_grad():
        for group in by_length.values():
            for k in range(0, len(group), ENCODE_BATCH):
                chunk = group[k : k + ENCODE_BATCH]
                states = model.hidden_states(torch.cat([tokens[t].input_ids for t in chunk]))
                pooled = model.pool(states[-1])
                for j, text in enumerate(chunk):
                    tok = tokens[text]
                    ids = tok.input_ids[0].tolist()
                    ref = tuple(reference_token_ids(ids, tok.special, model.tokenizer, tok.prompt))
                    if ref not in references:
                        ref_states = model.hidden_states(torch.tensor([ref], dtype=torch.long))
                        references[ref] = (ref_states[layer][0].clone(), model.pool(ref_states[-1])[0])
                    r, f_ref = references[ref]
                    paths[text] = TextPath(
                        tokens=tok, h=states[layer][j].clone(), r=r, f=pooled[j].clone(), f_ref=f_ref
                    )
    return paths


# ----------------------------------------------------------------------------- the shared first round


def first_round_nodes(options: RunOptions) -> np.ndarray:
    """The nodes integrate() evaluates first: the fixed N, or steps="auto"'s round 0."""
    steps = options.fixed_steps
    if steps is None:
        steps = min(auto_start(options.rule, options.layer), options.step_cap)
    return quadrature_nodes(options.rule, steps)[0]


def _first_round(evaluator: NodeEvaluator, paths: list[TextPath], options: RunOptions) -> None:
    """Evaluate the first round's nodes of every forward-mode path, texts of equal length sharing calls."""
    nodes = first_round_nodes(options)
    by_length: dict[int, list[TextPath]] = defaultdict(list)
    for path in paths:
        seq_len = path.h.shape[0]
        if evaluator.direction_for(seq_len) == "forward" and evaluator.missing(path, nodes):
            by_length[seq_len].append(path)
    run = evaluator.run
    run.plan(sum(evaluator.units(p, len(evaluator.missing(p, nodes))) for group in by_length.values() for p in group))
    for seq_len, group in by_length.items():
        items = [(path, float(a)) for path in group for a in evaluator.missing(path, nodes)]
        r = torch.stack([p.r for p, _ in items])  # (B, S, H)
        delta = torch.stack([p.h for p, _ in items]) - r
        alphas = torch.tensor([a for _, a in items], dtype=r.dtype, device=r.device)
        x = r + alphas[:, None, None] * delta
        fast = evaluator.structured
        if fast is not None and evaluator.use_structured and fast.check(group[0].h[None]):
            # The structured entry layer takes items of different texts in one call, as the generic path does.
            per_call = fast.nodes_per_call(seq_len, evaluator.budget // 4)
            with torch.no_grad():
                slices = torch.cat(
                    [
                        fast.columns(x[i : i + per_call], delta[i : i + per_call], evaluator.budget, run)
                        for i in range(0, len(items), per_call)
                    ]
                )
        else:
            slices = batched_columns(
                evaluator.tail,
                x,
                delta,
                budget_bytes=evaluator.budget,
                bytes_per_sequence=evaluator.model.sequence_bytes(seq_len),
                run=run,
            )
        for (path, a), s in zip(items, slices, strict=True):
            path.evaluated[node_key(a)] = s


def batched_columns(
    tail: Tail, x: torch.Tensor, delta: torch.Tensor, *, budget_bytes: int, bytes_per_sequence: int, run: Run
) -> torch.Tensor:
    """J_f(x_b) applied to delta_b row by row for B items at once: x, delta (B, S, H) -> (B, D, S).

    Tangent t of item b is delta_b on row t, zero elsewhere (one column of the node slice).
    Items may come from different texts of the same length. A call holds at most
    budget_bytes / bytes_per_sequence tangent sequences; each runs inside `run.unit`.
    """
    items, seq_len, _ = x.shape
    capacity = max(1, budget_bytes // max(1, bytes_per_sequence))
    n_tokens = max(1, min(seq_len, capacity))
    n_items = max(1, min(items, capacity // n_tokens))
    blocks = []
    with torch.no_grad():
        for b0 in range(0, items, n_items):
            xs, ds = x[b0 : b0 + n_items], delta[b0 : b0 + n_items]
            columns = []
            for t0 in range(0, seq_len, n_tokens):
                idx = torch.arange(t0, min(seq_len, t0 + n_tokens), device=x.device)
                tangents = torch.zeros(len(idx), *xs.shape, dtype=xs.dtype, device=x.device)
                tangents[torch.arange(len(idx), device=x.device), :, idx] = ds[:, idx].transpose(0, 1)
                with run.unit(len(idx) * len(xs)):
                    out = vmap(lambda t, p=xs: jvp(tail, (p,), (t,))[1])(tangents)  # (t, b, D)
                columns.append(out.permute(1, 2, 0))  # (b, D, t)
            blocks.append(torch.cat(columns, dim=2))
    return torch.cat(blocks, dim=0)
