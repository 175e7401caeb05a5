"""explain(): text pairs -> `Attribution`s; one pipeline for one pair and for many.

resolve(model, options, limits)   the model on its device and the RunOptions of the call
explain_pairs(loaded, pairs, run_options)
    every unique text tokenized once -> paths at layer L (attribution.core.paths: hidden states
    of texts of one length from one encoder forward, each distinct reference once) -> the first
    round's nodes evaluated for all texts of one length in shared calls -> per pair: integrate
    (fixed rule, adaptive Gauss-Kronrod or nested rounds) -> A = E_a^T E_b / norm (completeness:
    score, target, error) -> Attribution (result)
explain(model, text_a, text_b, options)   the one-pair case; attribution.core.many.explain_many
                                          the many-pairs one (refusals by pair index)
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError, PairLensWarning
from ..models import LoadedModel, load_model, on_device
from ..result import Attribution
from ..result.linguistics import annotate
from .adaptive import GUARD, integrate_adaptive
from .completeness import completeness
from .execution import Run
from .options import ExplainOptions, Limits, RunOptions, given_options
from .paths import (
    NodeEvaluator,
    PairPaths,
    TextPath,
    evaluate_first_round,
    prepare_pair,
    prepare_path,
    prepare_paths,
)
from .quadrature import auto_schedule
from .tokens import TokenizedText, check_text, encode_text

__all__ = [
    "ENGINE_VERSION", "Integration", "NodeEvaluator", "PairPaths", "TextPath", "as_model", "explain", "explain_pairs",
    "explain_prepared", "integrate", "prepare_pair", "prepare_path", "resolve",
]  # fmt: skip

log = logging.getLogger(__name__)

# Part of every persistent cache key (attribution.service.cache) and of a corpus run's settings: bump it
# whenever a change to the engine changes the numbers explain() returns for the same inputs, so stale
# results are never served or mixed into a resumed run. 2: adaptive steps="auto". 3: the adaptive rule decides
# on d f / da before slices (a near-tie can now fall the other way: another mesh, within the same tolerance).
ENGINE_VERSION = 3
PairProgress = Callable[[int, int], None]  # (pairs finished, pairs in all)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    A refused text raises its InputError; notes (truncation, no convergence) are also PairLensWarnings.
    """
    loaded, resolved = resolve(model, options, option_values, limits)
    (outcome,) = explain_pairs(loaded, [(text_a, text_b)], resolved, pos=pos, run=run, quiet=False)
    if isinstance(outcome, InputError):
        raise outcome
    return outcome


def explain_pairs(
    loaded: LoadedModel,
    pairs: Sequence[tuple[object, object]],
    resolved: RunOptions,
    *,
    pos: bool,
    run: Run | None = None,
    progress: PairProgress | None = None,
    check_first: bool = False,
    quiet: bool = True,
) -> list[Attribution | InputError]:
    """Each pair's Attribution, or the InputError that refused it, in input order (the one pipeline).

    `loaded` computes on resolved.device (see `resolve`). check_first: raise the first refusal instead
    (as InputError "Pair i: ..."), before computing. progress: called with (pairs finished, pairs in
    all). quiet: no PairLensWarning (one per pair would flood a corpus run); the notes are in each
    result's `warnings` either way. Each result's `seconds` is its own integration plus an equal share
    of the shared work.
    """
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
    paths = prepare_paths(prompted, {t: tokens[t] for t in tokens if t in used}, resolved.layer)
    evaluator = NodeEvaluator(prompted, resolved, run)
    if resolved.precision == "fp32":  # bf16 nodes are evaluated by integrate(), under its autocast
        evaluate_first_round(evaluator, list(paths.values()), resolved)
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
        result = explain_prepared(loaded, prepared, resolved, started=time.perf_counter() - shared, pos=pos)
        if not quiet:
            for message in result.warnings:  # for API users; the page and CLI read result.warnings
                warn_caller(message)
        outcomes[index] = result
        finished += 1
        if progress is not None:
            progress(finished, len(pairs))
    return [o for o in outcomes if o is not None]


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
    return annotate(result) if pos else result


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


def warn_caller(message: str) -> None:
    """A PairLensWarning attributed to the first caller outside the attribution package."""
    frame = sys._getframe(1)  # the caller of warn_caller: stacklevel 2
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, PairLensWarning, stacklevel=level)


# ----------------------------------------------------------------------------- texts before paths


@dataclass(frozen=True)
class _Side:
    """One text of one pair after the checks: its cleaned text, or the InputError it gave."""

    text: str | None
    error: InputError | None


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
