"""explain_many: many text pairs at once, the first round's node evaluations shared by texts of equal length.

The pipeline is the engine's (attribution.core.engine.explain_pairs; explain() is its one-pair
case). For a list of pairs:

1. every unique text is tokenized once; the hidden states of all texts of one length come from
   one encoder forward per batch, and each distinct reference input is run once (for BERT-like
   tokenizers the reference depends on the length only);
2. the first round's nodes (the fixed N, or steps="auto"'s round 0: `quadrature_nodes(rule,
   auto_start(rule, layer))`) are evaluated for all texts of one length S in shared calls: one
   batch item per (text, node), x and delta of shape (B, S, H) -> slices (B, D, S), by
   vmap(jvp) where tangent t of item b is delta_b on row t; calls are cut to the memory budget
   (attribution.core.paths);
3. the slices go into each text's `TextPath.evaluated` (texts shared by several pairs share
   one path), and each pair is finished by the engine's own `integrate` / `explain_prepared`,
   which finds the first round cached and evaluates any later round itself.

So every result equals explain()'s for the same pair and options up to float rounding (batched
matmuls), whatever rule `integrate` applies. Texts the engine would differentiate in reverse
mode (more tokens than embedding dimensions, or direction="reverse") are left to `integrate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError
from ..models import LoadedModel
from ..result import Attribution
from .engine import PairProgress, explain_pairs, resolve
from .execution import Run
from .options import ExplainOptions, Limits, RunOptions
from .paths import ENCODE_BATCH, batched_columns, first_round_nodes

__all__ = ["ENCODE_BATCH", "PairProgress", "batched_columns", "explain_many", "explain_outcomes", "first_round_nodes"]


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
    return explain_pairs(
        loaded, pairs, resolved, pos=pos, run=run, progress=progress, check_first=check_first, quiet=True
    )


def _pair_list(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InputError("pairs must be a list of (text_a, text_b) tuples.")
    out = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"Pair {index} must be a (text_a, text_b) tuple, not {type(pair).__name__}.")
        out.append((pair[0], pair[1]))
    return out
