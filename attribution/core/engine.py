"""explain(): a text pair -> an `Attribution`.

text pair -> tokens + reference (tokens) -> hidden states at layer L (models) -> quadrature
nodes (quadrature) -> Jacobian-vector products (jacobian) -> E_a, E_b -> A = E_a^T E_b / norm
(completeness: score, target, error) -> Attribution (result).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, PairLensWarning
from ..models import LoadedModel, load_model, on_device
from ..result import Attribution, TextSide
from .adaptive import GUARD, integrate_adaptive
from .completeness import Completeness, completeness
from .execution import Run
from .jacobian import Tail, integrated_jacobian, node_contributions, path_derivative
from .options import ExplainOptions, Limits, RunOptions, given_options
from .quadrature import auto_schedule, node_key, quadrature_nodes
from .structured import StructuredColumns
from .tokens import TokenizedText, check_text, encode_text, reference_ids

log = logging.getLogger(__name__)

# Part of every persistent cache key (attribution.service.cache) and of a corpus run's settings: bump it
# whenever a change to the engine changes the numbers explain() returns for the same inputs, so stale
# results are never served or mixed into a resumed run. 2: adaptive steps="auto". 3: the adaptive rule decides
# on d f / da before slices (a near-tie can now fall the other way: another mesh, within the same tolerance).
ENGINE_VERSION = 3


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


def explain(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions | None = None,
    *,
    pos: bool = True,
    run: Run | None = None,
    limits: Limits | None = None,
    **option_values: Any,
) -> Attribution:
    """Attribute the similarity of `text_a` and `text_b` to token pairs.

    Options come as an ExplainOptions or as its fields by keyword (layer=, steps=, rule=,
    mode=, similarity=, tolerance=, direction=, memory_budget_mb=, prompt_name=, prompt=, device=); see
    ExplainOptions. device= other than the loaded model's computes on a copy loaded there.
    limits: the operator's limits (None: the documented defaults; `attribution.explain` passes
    PAIRLENS_*). Options already resolved (RunOptions) are used as they are.
    pos: annotate words and POS tags (attribution.annotate). run: cancellation, progress and
    the differentiation gate (attribution.core.execution.Run); raises Cancelled when cancelled.
    """
    loaded, resolved = resolve(model, options, option_values, limits)
    text_a = check_text(text_a, "A", resolved.max_text_chars)
    text_b = check_text(text_b, "B", resolved.max_text_chars)
    started = time.perf_counter()

    run = run or Run()
    run.check()
    pair = prepare_pair(loaded, text_a, text_b, resolved, run)
    return explain_prepared(loaded, pair, resolved, started=started, pos=pos)


@dataclass
class Integration:
    """What integrating a pair's paths gave: A, its sum, the error history and the nodes used."""

    matrix: torch.Tensor  # (S_a, S_b)
    total: float  # sum of A
    relative: float  # |sum - target| / |target|
    steps: int  # nodes per text of the final rule
    history: list[tuple[int, float]]  # (nodes, relative error) per round
    converged: bool
    notes: list[str]
    error_bound: float | None = None  # adaptive rule: certified bound on |relative| (None otherwise)


def integrate(pair: PairPaths, options: RunOptions) -> Integration:
    """Integrate both paths: the fixed N-node rule; steps="auto" with Gauss-Legendre: the adaptive
    Gauss-Kronrod rule (attribution.core.adaptive); steps="auto" with a nested rule: its rounds until
    within tolerance.

    Nodes already in `pair.a.evaluated` / `pair.b.evaluated` are reused (explain_many fills them).
    """
    check = pair.completeness
    fixed = options.fixed_steps
    if fixed is None and options.rule == "gauss-legendre":
        return integrate_adaptive_pair(pair, options)
    schedule = [fixed] if fixed is not None else auto_schedule(options.rule, options.step_cap, options.layer)
    history: list[tuple[int, float]] = []
    matrix = torch.zeros(0)
    total = relative = math.nan
    n_used = schedule[0]
    for n_used in schedule:
        matrix = pair.matrix(options.rule, n_used)
        total = float(matrix.double().sum())
        relative = check.relative_error(total)
        history.append((n_used, relative))
        log.debug("%d nodes, relative error %.2e", n_used, relative)
        if relative <= options.tolerance:
            break
    converged = fixed is not None or relative <= options.tolerance
    notes = []
    if not converged:
        notes.append(
            f"steps=auto stopped at the cap of {n_used} nodes with relative integration error {relative:.2e} "
            f"above the tolerance {options.tolerance:g}; raise PAIRLENS_MAX_STEPS, use a deeper layer or rule "
            "'gauss-legendre'."
        )
    return Integration(matrix, total, relative, n_used, history, converged, notes)


def integrate_adaptive_pair(pair: PairPaths, options: RunOptions) -> Integration:
    """steps="auto", rule gauss-legendre: adaptive Gauss-Kronrod refinement with a certified error bound."""
    check = pair.completeness
    cap = options.step_cap
    done = integrate_adaptive(pair, options.layer, options.tolerance, cap)
    matrix = (done.e_a.T @ done.e_b) / check.norm
    total = float(matrix.double().sum())
    relative = check.relative_error(total)
    used = max(done.used_a, done.used_b)
    history = [(n, err) for n, err, _ in done.history]
    notes = []
    if not done.converged:
        more = (
            f"raise auto_max_steps (this request was limited to {cap} nodes, e.g. by a server's work cap) or "
            "PAIRLENS_MAX_STEPS"
            if options.capped
            else "raise PAIRLENS_MAX_STEPS (up to 1024)"
        )
        notes.append(
            f"steps=auto (adaptive Gauss-Kronrod) stopped at the cap of {cap} nodes per text before reaching the "
            f"tolerance {options.tolerance:g}: relative integration error {relative:.2e}, certified bound "
            f"{done.relative_bound:.2e} (it stops when the error is within the tolerance and the bound within "
            f"{GUARD:g}x it); {more}, attribute at a deeper layer, or accept a larger tolerance"
            + (" (bf16 tangent passes round at about 1e-3: use 'fp32')." if options.precision == "bf16" else ".")
        )
    log.debug(
        "adaptive: %d rounds, slices evaluated %d/%d, used %d/%d, d f / da %d, primal %d, bound %.2e",
        done.rounds, done.nodes_a, done.nodes_b, done.used_a, done.used_b, done.derived, done.primal,
        done.relative_bound,
    )  # fmt: skip
    return Integration(matrix, total, relative, used, history, done.converged, notes, error_bound=done.relative_bound)


def explain_prepared(
    loaded: LoadedModel, pair: PairPaths, options: RunOptions, *, started: float, pos: bool = True
) -> Attribution:
    """Integrate a prepared pair (options resolved for the model) and build its Attribution."""
    check = pair.completeness
    done = integrate(pair, options)
    notes = pair.a.tokens.notes("A") + pair.b.tokens.notes("B") + done.notes
    if options.precision == "bf16":
        notes.append(
            f"Tangent passes ran in bf16 (precision='bf16'): the relative integration error {done.relative:.2e} "
            "includes the rounding this adds; use precision 'fp32' for exact attributions."
        )
    fixed = options.fixed_steps
    result = Attribution(
        matrix=done.matrix.detach().double().cpu().numpy(),
        a=pair.a.side(),
        b=pair.b.side(),
        score=check.score,
        target=check.target,
        attribution_sum=done.total,
        integration_error=done.total - check.target,
        relative_error=done.relative,
        reference_terms=check.reference_terms,
        model_score=check.model_score,
        exact_model=bool(loaded.exact),
        layer=options.layer,
        num_layers=loaded.num_layers,
        steps=done.steps,
        rule=options.rule,
        mode=options.mode,
        similarity=options.similarity,
        model_name=loaded.name,
        seconds=time.perf_counter() - started,
        tolerance=None if fixed is not None else options.tolerance,
        converged=done.converged,
        error_by_steps=done.history,
        error_bound=done.error_bound,
        step_cap=None if fixed is not None else options.step_cap,
        warnings=notes,
        run_options=options.to_dict(),
    )
    for message in notes:  # for API users; the page and CLI read result.warnings
        warnings.warn(message, PairLensWarning, stacklevel=3)
    if pos:
        from ..result.linguistics import annotate

        result = annotate(result)
    return result


def resolve(
    model: object, options: ExplainOptions | RunOptions | None, option_values: dict[str, Any], limits: Limits | None
) -> tuple[LoadedModel, RunOptions]:
    """(the model on the run's device, the resolved options) of a call: explain's and explain_many's one place.

    An ExplainOptions (or its fields by keyword) is resolved with the model and `limits` (None: the
    documented defaults); RunOptions already resolved are used as they are.
    """
    if isinstance(options, RunOptions):
        if option_values:
            raise InputError("Give either resolved RunOptions or option keywords, not both.")
        return as_model(model, options.device), options
    request = given_options(options, option_values)
    limits = limits or Limits()
    loaded = as_model(model, request.device, limits.device)
    return loaded, request.for_model(loaded, limits)


def as_model(model: object, device: str | None = None, default_device: str = "auto") -> LoadedModel:
    """A loaded model on `device` (None: where it is; for a name, `default_device`, e.g. PAIRLENS_DEVICE)."""
    if isinstance(model, LoadedModel):
        return on_device(model, device)
    if isinstance(model, str):
        return load_model(model, device=device or default_device)
    raise InputError(
        f"model must be a loaded model (attribution.load_model) or a model name, not {type(model).__name__}."
    )
