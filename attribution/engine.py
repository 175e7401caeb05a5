"""explain(): a text pair -> an `Attribution`.

text pair -> tokens + reference (tokens) -> hidden states at layer L (models) -> quadrature
nodes (quadrature) -> Jacobian-vector products (jacobian) -> E_a, E_b -> A = E_a^T E_b / norm.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InputError, PairLensWarning
from .jacobian import embedding_tail, integrated_jacobian, node_contributions, sequence_bytes
from .models import LoadedModel, load_model
from .quadrature import auto_schedule, node_key, quadrature_nodes
from .result import Attribution
from .settings import DEFAULT_RULE, DEFAULT_TOLERANCE, MODES, RULES, SIMILARITIES, get_settings
from .tokens import TokenizedText, check_text, encode_text, reference_ids


@dataclass
class TextPath:
    """One text's straight path from reference to input at layer L, with evaluated nodes cached."""

    tokens: TokenizedText
    h: torch.Tensor  # (S, H) hidden states at the input of layer L
    r: torch.Tensor  # (S, H) the reference's
    f: torch.Tensor  # (D,) pooled embedding of the text
    f_ref: torch.Tensor  # (D,) pooled embedding of the reference
    evaluated: dict[float, torch.Tensor] = field(default_factory=dict)  # node -> (D, S) slice

    def integrated(self, nodes: np.ndarray, weights: np.ndarray, evaluate: _Evaluator) -> torch.Tensor:
        """E (D, S) for these nodes, evaluating only nodes not seen before."""
        missing = [a for a in nodes if node_key(a) not in self.evaluated]
        if missing:
            slices = evaluate(self, np.asarray(missing))
            for a, s in zip(missing, slices, strict=True):
                self.evaluated[node_key(a)] = s
        stacked = torch.stack([self.evaluated[node_key(a)] for a in nodes])
        return integrated_jacobian(stacked, weights)


class _Evaluator:
    def __init__(self, model: LoadedModel, layer: int, budget_bytes: int, direction: str) -> None:
        self.tail = embedding_tail(model, layer)
        self.model = model
        self.budget = budget_bytes
        self.direction = direction
        self.layers_run = max(1, model.num_layers - layer)

    def __call__(self, path: TextPath, nodes: np.ndarray) -> torch.Tensor:
        seq_len = path.h.shape[0]
        direction = self.direction
        if direction == "auto":  # S JVPs or D VJPs per node: take the fewer
            direction = "forward" if seq_len <= self.model.embedding_dim else "reverse"
        return node_contributions(
            self.tail,
            path.h,
            path.r,
            nodes,
            direction=direction,
            budget_bytes=self.budget,
            bytes_per_sequence=sequence_bytes(self.model, seq_len),
        )


def prepare_path(model: LoadedModel, text: str, layer: int, label: str) -> TextPath:
    tokens = encode_text(model, text, label)
    with torch.no_grad():
        states = model.hidden_states(tokens.input_ids)
        ref_states = model.hidden_states(reference_ids(model, tokens.input_ids.shape[1]))
        f = model.pool(states[-1])[0]
        f_ref = model.pool(ref_states[-1])[0]
    return TextPath(tokens, states[layer][0].clone(), ref_states[layer][0].clone(), f, f_ref)


def resolve_options(
    model: LoadedModel,
    layer: int | None,
    steps: int | str,
    rule: str | None,
    mode: str | None,
    similarity: str | None,
    tolerance: float,
) -> tuple[int, int | None, str, str, str]:
    """Validated (layer, fixed steps or None for auto, rule, mode, similarity)."""
    max_steps = get_settings().max_steps
    layer = model.default_layer if layer is None else layer
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer <= model.num_layers:
        raise InputError(f"layer must be a whole number from 0 to {model.num_layers} for {model.name} (got {layer!r}).")
    fixed: int | None
    if isinstance(steps, str) and steps.strip().lower() == "auto":
        fixed = None
    else:
        try:
            fixed = int(steps)
            if isinstance(steps, float) and steps != fixed:
                raise ValueError
        except (TypeError, ValueError):
            raise InputError(f"steps must be 'auto' or a whole number from 1 to {max_steps} (got {steps!r}).") from None
        if not 1 <= fixed <= max_steps:
            raise InputError(f"steps must be 'auto' or a whole number from 1 to {max_steps} (got {fixed}).")
    rule = DEFAULT_RULE if rule is None else rule
    if rule not in RULES:
        raise InputError(f"Unknown rule '{rule}': choose one of {', '.join(RULES)}.")
    mode = model.default_mode if mode is None else mode
    if mode not in MODES:
        raise InputError(f"Unknown mode '{mode}': choose 'approximate' or 'exact'.")
    similarity = model.similarity if similarity is None else {"cosine": "cos"}.get(similarity, similarity)
    if similarity not in SIMILARITIES:
        raise InputError(f"Unknown similarity '{similarity}': choose 'cos' or 'dot'.")
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"tolerance must be a positive number such as 1e-3 (got {tolerance!r}).")
    return int(layer), fixed, rule, mode, similarity


def explain(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    layer: int | None = None,
    steps: int | str = "auto",
    rule: str | None = None,
    mode: str | None = None,
    similarity: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    pos: bool = True,
    memory_budget_mb: int | None = None,
    direction: str = "auto",
) -> Attribution:
    """Attribute the similarity of `text_a` and `text_b` to token pairs.

    layer: hidden states at the input of this encoder layer (0 = embeddings; default: the
    last layer's input). steps: N nodes, or "auto" (raise N until |integration_error| <=
    tolerance * |target|, or the cap). mode: "approximate" (f) or "exact" (f(x) - f(r_x)).
    direction: "forward" (S JVPs per node), "reverse" (D VJPs) or "auto" (fewer of the two).
    """
    if isinstance(model, str):
        model = load_model(model)
    text_a = check_text(text_a, "A")
    text_b = check_text(text_b, "B")
    layer, fixed, rule, mode, similarity = resolve_options(model, layer, steps, rule, mode, similarity, tolerance)
    if direction not in ("auto", "forward", "reverse"):
        raise InputError(f"direction must be 'auto', 'forward' or 'reverse' (got {direction!r}).")
    settings = get_settings()
    budget = (memory_budget_mb or settings.memory_budget_mb) * 2**20
    started = time.perf_counter()

    path_a = prepare_path(model, text_a, layer, "A")
    path_b = prepare_path(model, text_b, layer, "B")
    notes = path_a.tokens.notes("A") + path_b.tokens.notes("B")

    # Embeddings compared: f in approximate mode, f - f(r) in exact mode (paper's shifted model).
    delta_a, delta_b = path_a.f - path_a.f_ref, path_b.f - path_b.f_ref
    emb_a, emb_b = (delta_a, delta_b) if mode == "exact" else (path_a.f, path_b.f)
    norm = float(emb_a.norm() * emb_b.norm()) if similarity == "cos" else 1.0
    if norm == 0.0:
        raise InputError("An embedding is zero, so cosine similarity is undefined: try mode 'approximate' or 'dot'.")
    score = float(emb_a @ emb_b) / norm
    target = float(delta_a @ delta_b) / norm

    evaluate = _Evaluator(model, layer, budget, direction)
    schedule = [fixed] if fixed is not None else auto_schedule(rule, settings.max_steps, layer)
    history: list[tuple[int, float]] = []
    matrix = torch.zeros(0)
    total = error = relative = math.nan
    n_used = schedule[0]
    for n_used in schedule:
        nodes, weights = quadrature_nodes(rule, n_used)
        e_a = path_a.integrated(nodes, weights, evaluate)
        e_b = path_b.integrated(nodes, weights, evaluate)
        matrix = (e_a.T @ e_b) / norm
        total = float(matrix.double().sum())
        error = total - target
        relative = abs(error) / abs(target) if target != 0 else (0.0 if error == 0 else math.inf)
        history.append((n_used, relative))
        if relative <= tolerance:
            break
    converged = fixed is not None or relative <= tolerance
    if not converged:
        notes.append(
            f"steps=auto stopped at the cap of {n_used} nodes with relative integration error {relative:.2e} "
            f"above the tolerance {tolerance:g}; raise PAIRLENS_MAX_STEPS, use a deeper layer or rule 'gauss-legendre'."
        )

    result = Attribution(
        matrix=matrix.detach().double().numpy(),
        tokens_a=path_a.tokens.tokens,
        tokens_b=path_b.tokens.tokens,
        text_a=path_a.tokens.text,
        text_b=path_b.tokens.text,
        score=score,
        target=target,
        attribution_sum=total,
        integration_error=error,
        relative_error=relative,
        reference_terms=score - target,
        layer=layer,
        num_layers=model.num_layers,
        steps=n_used,
        rule=rule,
        mode=mode,
        similarity=similarity,
        model_name=model.name,
        seconds=time.perf_counter() - started,
        tolerance=None if fixed is not None else tolerance,
        converged=converged,
        error_by_steps=history,
        truncated_a=path_a.tokens.truncated,
        truncated_b=path_b.tokens.truncated,
        special_a=path_a.tokens.special,
        special_b=path_b.tokens.special,
        offsets_a=path_a.tokens.offsets,
        offsets_b=path_b.tokens.offsets,
        warnings=notes,
    )
    for message in notes:  # for API users; the page and CLI read result.warnings
        warnings.warn(message, PairLensWarning, stacklevel=2)
    if pos:
        from .linguistics import annotate

        result = annotate(result)
    return result
