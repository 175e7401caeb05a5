"""Faithfulness you can measure: does the map say what the model depends on?

    from attribution import load_model, explain
    from attribution.faithfulness import perturbation_sweep, deletion_curves, explain_method
    model = load_model("all-MiniLM-L6-v2")
    res = explain(model, "A man plays a guitar.", "Someone plays an instrument.")
    sweep = perturbation_sweep(model, res)             # each token masked in turn: loss vs row/column total
    sweep.spearman                                     # rank agreement (Spearman's rho)
    hxi = explain_method(model, res.a.text, res.b.text, method="hessian-x-input")  # the second method
    curves = deletion_curves(model, {"integrated-jacobians": res, "hessian-x-input": hxi})
    curves.between("integrated-jacobians")             # deletion area gained over random order

Modules: scoring (edited pairs scored in batched forward passes), units (tokens / words and their
attributions), sweep, curves, methods (integrated Jacobians and the second method), report (all at once),
corpus (tables over many pairs). See docs/guides/faithfulness.md for how to read them.
"""

from .curves import Curve, Curves, deletion_curves
from .methods import DEFAULT_METHOD, METHODS, SECOND_METHOD, explain_method, method_label
from .report import FaithfulnessReport, faithfulness_report
from .sweep import Sweep, SweepItem, perturbation_sweep, spearman

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "SECOND_METHOD",
    "Curve",
    "Curves",
    "FaithfulnessReport",
    "Sweep",
    "SweepItem",
    "deletion_curves",
    "explain_method",
    "faithfulness_report",
    "method_label",
    "perturbation_sweep",
    "spearman",
]
