"""Each text's straight path from its reference to its input at layer L, and node evaluation on it.

    prepare_paths(model, tokens, layer)  every text's h, r, f(h), f(r): one encoder forward per
                                         (length, batch), one per distinct reference input
    NodeEvaluator(model, options, run)   J_f applied to (h - r) row by row at nodes of a path: (N,) -> (N, D, S)
    evaluate_first_round(evaluator, paths, options)
                                         the first round's nodes of every forward-mode path, texts of
                                         equal length sharing calls (batched_columns)
    PairPaths(a, b, completeness, evaluator).matrix(rule, N)  A = E_a^T E_b / norm for an N-node rule

The engine (attribution.core.engine) integrates along these paths; the adaptive rule
(attribution.core.adaptive) refines them. Evaluated nodes are cached per path (`TextPath.evaluated`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.func import jvp, vmap

from ..models import LoadedModel
from ..result import TextSide
from .completeness import Completeness, completeness
from .execution import Run
from .jacobian import Tail, integrated_jacobian, node_contributions, path_derivative
from .options import RunOptions
from .quadrature import auto_start, node_key, quadrature_nodes
from .structured import StructuredColumns
from .tokens import TokenizedText, encode_text, reference_ids, reference_token_ids

ENCODE_BATCH = 64  # texts per encoder forward when preparing states


@dataclass
class TextPath:
    """One text's straight path from reference to input at layer L, with evaluated nodes cached."""

    tokens: TokenizedText
    h: torch.Tensor  # (S, H) hidden states at the input of layer L
    r: torch.Tensor  # (S, H) the reference's
    f: torch.Tensor  # (D,) pooled embedding of the text
    f_ref: torch.Tensor  # (D,) pooled embedding of the reference
    evaluated: dict[float, torch.Tensor] = field(default_factory=dict)  # node -> (D, S) slice

    def side(self) -> TextSide:
        """The text's part of the result (not yet annotated)."""
        t = self.tokens
        return TextSide(
            text=t.text, tokens=t.tokens, offsets=t.offsets, special=t.special, truncated=t.truncated, prompt=t.prompt
        )


class NodeEvaluator:
    """J_f applied to (h - r) row by row at given nodes of a text's path: (N,) -> (N, D, S).

    Forward mode goes through the structured entry layer (attribution.core.structured) where the
    model's layer qualifies and its primal reproduces the tail; everywhere else through the generic
    `node_contributions`. `use_structured = False` (class or instance) forces the generic path
    (benchmarks and tests compare the two).
    """

    use_structured = True

    def __init__(self, model: LoadedModel, options: RunOptions, run: Run) -> None:
        self.tail: Tail = model.tail(options.layer)
        self.model = model
        self.budget = options.budget_bytes
        self.direction = options.direction
        self.run = run
        self.structured = StructuredColumns.for_model(model, options.layer) if self.direction != "reverse" else None
        self.precision = options.precision

    def direction_for(self, seq_len: int) -> str:
        """S JVPs or D VJPs per node: "auto" takes the fewer."""
        if self.direction != "auto":
            return self.direction
        return "forward" if seq_len <= self.model.embedding_dim else "reverse"

    def units(self, path: TextPath, n_nodes: int) -> int:
        """Tangent passes that evaluating n_nodes new nodes of this path costs."""
        seq_len = path.h.shape[0]
        per_node = seq_len if self.direction_for(seq_len) == "forward" else self.model.embedding_dim
        return n_nodes * per_node

    def __call__(self, path: TextPath, nodes: np.ndarray) -> torch.Tensor:
        if self.precision == "bf16":
            with torch.autocast(device_type=path.h.device.type, dtype=torch.bfloat16):
                return self._slices(path, nodes).to(path.h.dtype)
        return self._slices(path, nodes)

    def _slices(self, path: TextPath, nodes: np.ndarray) -> torch.Tensor:
        seq_len = path.h.shape[0]
        direction = self.direction_for(seq_len)
        fast = self.structured
        if direction == "forward" and fast is not None and self.use_structured and fast.check(path.h[None]):
            return fast(path.h, path.r, nodes, budget_bytes=self.budget, run=self.run)
        return node_contributions(
            self.tail,
            path.h,
            path.r,
            nodes,
            direction=direction,
            budget_bytes=self.budget,
            bytes_per_sequence=self.model.sequence_bytes(seq_len),
            run=self.run,
        )

    def derivative(self, path: TextPath, nodes: np.ndarray) -> torch.Tensor:
        """d f / da at these nodes of the path, (N, D): what a slice's columns sum to, for one tangent pass."""
        return path_derivative(
            self.tail,
            path.h,
            path.r,
            nodes,
            budget_bytes=self.budget,
            bytes_per_sequence=self.model.sequence_bytes(path.h.shape[0]),
            run=self.run,
        )

    def missing(self, path: TextPath, nodes: np.ndarray) -> list[float]:
        return [a for a in nodes if node_key(a) not in path.evaluated]

    def evaluate(self, path: TextPath, nodes: np.ndarray) -> None:
        """Evaluate the nodes the path has not seen (one call) into `path.evaluated`."""
        missing = {node_key(a): float(a) for a in reversed(self.missing(path, nodes))}  # first float of each key
        if missing:
            slices = self(path, np.asarray(list(missing.values())))
            for key, s in zip(missing, slices, strict=True):
                path.evaluated[key] = s

    def integrated(self, path: TextPath, nodes: np.ndarray, weights: np.ndarray) -> torch.Tensor:
        """E (D, S) of one text for these nodes, evaluating only nodes the path has not seen."""
        self.evaluate(path, nodes)
        stacked = torch.stack([path.evaluated[node_key(a)] for a in nodes])
        return integrated_jacobian(stacked, weights)


@dataclass
class PairPaths:
    """Both texts' paths at one layer, what their attributions must sum to, and their evaluator."""

    a: TextPath
    b: TextPath
    completeness: Completeness
    evaluator: NodeEvaluator

    def matrix(self, rule: str, steps: int) -> torch.Tensor:
        """A = E_a^T E_b / norm for an N-node rule, shape (S_a, S_b)."""
        nodes, weights = quadrature_nodes(rule, steps)
        evaluator = self.evaluator
        evaluator.run.plan(sum(evaluator.units(p, len(evaluator.missing(p, nodes))) for p in (self.a, self.b)))
        e_a = self.evaluator.integrated(self.a, nodes, weights)
        e_b = self.evaluator.integrated(self.b, nodes, weights)
        return (e_a.T @ e_b) / self.completeness.norm


def prepare_path(model: LoadedModel, text: str, layer: int, label: str, max_tokens: int | None = None) -> TextPath:
    """Tokenize one text (at most max_tokens; None: the model's limit) and compute its and its reference's
    states at layer L and embeddings."""
    tokens = encode_text(model, text, label, max_tokens)
    with torch.no_grad():
        states = model.hidden_states(tokens.input_ids)
        ref_states = model.hidden_states(reference_ids(tokens, model.tokenizer))
        f = model.pool(states[-1])[0]
        f_ref = model.pool(ref_states[-1])[0]
    return TextPath(tokens, states[layer][0].clone(), ref_states[layer][0].clone(), f, f_ref)


def prepare_pair(
    model: LoadedModel, text_a: str, text_b: str, options: RunOptions, run: Run | None = None
) -> PairPaths:
    """Both paths for resolved options (`ExplainOptions.for_model(model, limits)`)."""
    model = model.prompted(prompt=options.prompt)  # both texts get the prompt, as in encode()
    path_a = prepare_path(model, text_a, options.layer, "A", options.max_tokens)
    path_b = prepare_path(model, text_b, options.layer, "B", options.max_tokens)
    check = completeness(path_a.f, path_a.f_ref, path_b.f, path_b.f_ref, options.mode, options.similarity)
    return PairPaths(path_a, path_b, check, NodeEvaluator(model, options, run or Run()))


def prepare_paths(model: LoadedModel, tokens: dict[str, TokenizedText], layer: int) -> dict[str, TextPath]:
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


def first_round_nodes(options: RunOptions) -> np.ndarray:
    """The nodes integrate() evaluates first: the fixed N, or steps="auto"'s round 0."""
    steps = options.fixed_steps
    if steps is None:
        steps = min(auto_start(options.rule, options.layer), options.step_cap)
    return quadrature_nodes(options.rule, steps)[0]


def evaluate_first_round(evaluator: NodeEvaluator, paths: list[TextPath], options: RunOptions) -> None:
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
