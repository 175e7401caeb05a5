"""Attribution methods a faithfulness check can compare, all with the same token-by-token output.

- "integrated-jacobians": PairLens' own method, `attribution.explain` with the options as given.
- "hessian-x-input": the one-node approximation, a cheap SECOND METHOD to compare against (not integrated
  Jacobians): E[d, i] = sum_k (h - r)[i, k] * d f_d / d h[i, k] at h itself, i.e. the integrand at a = 1 only
  (no integral), and A = E_a^T E_b / norm as for integrated Jacobians. It is `explain` with the right
  Riemann rule and one node (a_1 = 1, w_1 = 1). Its matrix does not sum to the target: the sum of A is
  reported, its "integration error" is the gap to the target, not a quadrature error.

BiLRP (second-order LRP, Eberle et al. 2020; for transformers Vasileiou and Eberle 2024) is not offered:
it needs LRP propagation rules inside every attention and normalisation layer of each architecture (the
engine enters models through their own forward, attribution.models.entry, and re-implements no layer), so
it cannot be added faithfully as a wrapper of the existing engine.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, get_args

from ..core import engine  # engine.explain looked up at call time (one explain, wherever it is replaced)
from ..core.engine import resolve
from ..core.execution import Run
from ..core.options import ExplainOptions, Limits, RunOptions
from ..errors import InputError, PairLensWarning
from ..models import LoadedModel
from ..result import Attribution
from .units import operator_limits

Method = Literal["integrated-jacobians", "hessian-x-input"]
METHODS: tuple[Method, ...] = get_args(Method)
DEFAULT_METHOD: Method = "integrated-jacobians"
SECOND_METHOD: Method = "hessian-x-input"
LABELS: dict[str, str] = {
    "integrated-jacobians": "integrated Jacobians",
    "hessian-x-input": "Hessian × input (second method: one node at a = 1)",
}
SHORT_LABELS: dict[str, str] = {
    "integrated-jacobians": "integrated Jacobians",
    "hessian-x-input": "Hessian × input (2nd method)",
}
HXI_NOTE = (
    "Second method, Hessian x input: one node at a = 1 (the derivative at the input only, no integral). It is a "
    "cheap baseline to compare with integrated Jacobians; its cells do not sum to the target, and the 'integration "
    "error' shown is that gap, not a quadrature error."
)


def check_method(method: object) -> Method:
    if method not in METHODS:
        listed = ", ".join(f"'{m}'" for m in METHODS)
        raise InputError(f"Unknown attribution method {method!r}: choose one of {listed}.")
    return method


def method_label(method: str) -> str:
    """The name shown to users ('Hessian × input (second method: ...)')."""
    return LABELS.get(method, method)


def method_options(options: RunOptions, method: str) -> RunOptions:
    """The resolved options that compute `method`: integrated Jacobians as given; Hessian x input as the right
    Riemann rule with one node (a = 1, weight 1)."""
    if check_method(method) == "hessian-x-input":
        return options.replace(steps=1, rule="riemann-right")
    return options


def explain_method(
    model: LoadedModel | str,
    text_a: str,
    text_b: str,
    options: ExplainOptions | RunOptions | None = None,
    *,
    method: str = DEFAULT_METHOD,
    pos: bool = True,
    run: Run | None = None,
    limits: Limits | None = None,
    **option_values: Any,
) -> Attribution:
    """`explain` by the attribution method `method` ("integrated-jacobians" | "hessian-x-input"). The options'
    steps and rule are replaced for Hessian x input, whose result carries HXI_NOTE in its warnings.
    limits: the operator's (None: PAIRLENS_*, as attribution.explain)."""
    chosen = check_method(method)
    loaded, resolved = resolve(model, options, option_values, operator_limits(limits))
    options = method_options(resolved, chosen)
    if chosen == "integrated-jacobians":
        return engine.explain(loaded, text_a, text_b, options, pos=pos, run=run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PairLensWarning)
        result = engine.explain(loaded, text_a, text_b, options, pos=pos, run=run)
    return result.replace(warnings=[HXI_NOTE, *result.warnings])
