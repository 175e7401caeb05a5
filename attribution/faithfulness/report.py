"""One pair, every check: each method's map, its perturbation sweep, and the deletion / insertion curves.

    report = faithfulness_report(model, "A man plays a guitar.", "Someone plays an instrument.")
    report.sweeps["integrated-jacobians"].spearman     # rank agreement of the map with the sweep
    report.curves.between("integrated-jacobians")      # deletion area gained over random order

The sweep's edits and the curves' edits share one scorer, so an edited version is embedded once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core.engine import resolve
from ..core.execution import Run
from ..core.options import ExplainOptions, Limits, RunOptions
from ..core.tokens import check_text
from ..errors import InputError
from ..models import LoadedModel
from ..result import Attribution
from .curves import DEFAULT_DRAWS, Curves, check_draws, check_order, curves_prepared
from .methods import DEFAULT_METHOD, SECOND_METHOD, check_method, explain_method
from .scoring import DEFAULT_CHUNK, check_op
from .sweep import Sweep, sweep_prepared
from .units import check_level, operator_limits, prepare


@dataclass(frozen=True)
class FaithfulnessReport:
    """Each method's result and sweep (by method name, the first method first) and the curves of all of them."""

    results: dict[str, Attribution]
    sweeps: dict[str, Sweep]
    curves: Curves
    seconds: float

    @property
    def methods(self) -> list[str]:
        return list(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the sweeps, the curves and, per method, the result's score, sum and layer (not the
        matrices: `pairlens explain --json` prints those)."""
        first = next(iter(self.results.values()))
        return {
            "model": first.model_name,
            "layer": first.layer,
            "mode": first.mode,
            "similarity": first.similarity,
            "text_a": first.a.text,
            "text_b": first.b.text,
            "methods": {
                name: {
                    "steps": r.steps,
                    "rule": r.rule,
                    "score": r.score,
                    "attribution_sum": r.attribution_sum,
                    "target": r.target,
                    "warnings": list(r.warnings),
                }
                for name, r in self.results.items()
            },
            "sweeps": {name: s.to_dict() for name, s in self.sweeps.items()},
            "curves": self.curves.to_dict(),
            "seconds": self.seconds,
        }


def check_methods(methods: Sequence[str]) -> list[str]:
    chosen = [check_method(m) for m in methods]
    if not chosen or len(set(chosen)) != len(chosen):
        raise InputError("Give one or two different attribution methods (e.g. integrated-jacobians hessian-x-input).")
    return list(chosen)


def faithfulness_report(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions | None = None,
    *,
    methods: Sequence[str] = (DEFAULT_METHOD, SECOND_METHOD),
    op: str = "mask",
    level: str = "token",
    order: str = "unit",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    run: Run | None = None,
    limits: Limits | None = None,
    **option_values: Any,
) -> FaithfulnessReport:
    """Explain the pair by each method, sweep each map, and draw the curves of all of them and random order.

    limits: the operator's (None: PAIRLENS_*, as attribution.explain)."""
    started = time.perf_counter()
    chosen = check_methods(methods)
    edit, unit_level, kind_order, n_draws = check_op(op), check_level(level), check_order(order), check_draws(draws)
    limits = operator_limits(limits)  # read once: every stage below runs under the same limits
    loaded, resolved = resolve(model, options, option_values, limits)
    check_text(text_a, "A", resolved.max_text_chars)
    check_text(text_b, "B", resolved.max_text_chars)
    run = run or Run()
    results = {m: explain_method(loaded, text_a, text_b, resolved, method=m, run=run, limits=limits) for m in chosen}
    run.check()  # Cancelled between the stages as well as inside explain
    pair = prepare(loaded, results[chosen[0]], resolved, level=unit_level, chunk=chunk, limits=limits)
    sweeps = {}
    for name, result in results.items():
        pair.result = result
        sweeps[name] = sweep_prepared(pair, op=edit, method=name)
    run.check()
    curves = curves_prepared(
        pair, {m: r.matrix for m, r in results.items()}, op=edit, order=kind_order, draws=n_draws, seed=seed
    )
    return FaithfulnessReport(results, sweeps, curves, time.perf_counter() - started)
