"""`pairlens faithfulness A B`: the perturbation sweep and deletion / insertion curves of one pair.

pairlens faithfulness "A man plays a guitar." "Someone plays an instrument." [--json]
    [--methods integrated-jacobians hessian-x-input] [--op mask|drop] [--level token|word]
    [--order unit|pair] [--draws 5] [--seed 0] + the explain options (--layer, --steps, ...)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Any

from ..core.options import add_explain_options, options_from_args
from ..core.tokens import check_text
from ..models import load_model
from ..settings import DEFAULT_MODEL, get_settings
from .curves import DEFAULT_DRAWS, ORDERS, RANDOM
from .methods import DEFAULT_METHOD, METHODS, SECOND_METHOD, method_label
from .report import FaithfulnessReport, faithfulness_report
from .scoring import OPS
from .units import LEVELS


def add_parser(sub: Any) -> None:
    fa = sub.add_parser(
        "faithfulness",
        help="perturbation sweep and deletion / insertion curves of one pair, for one or two attribution methods",
    )
    fa.add_argument("text_a")
    fa.add_argument("text_b")
    fa.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})")
    add_explain_options(fa)
    fa.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=[DEFAULT_METHOD, SECOND_METHOD],
        help="attribution methods to check (default both; hessian-x-input is the one-node second method)",
    )
    fa.add_argument("--op", choices=OPS, default="mask", help="mask: replace by the pad token (default); drop: delete")
    fa.add_argument("--level", choices=LEVELS, default="token", help="remove tokens (default) or whole words")
    fa.add_argument(
        "--order", choices=ORDERS, default="unit", help="curves by row/column totals (unit) or by cells (pair)"
    )
    fa.add_argument(
        "--draws", type=int, default=DEFAULT_DRAWS, help=f"random orders averaged (default {DEFAULT_DRAWS})"
    )
    fa.add_argument("--seed", type=int, default=0, help="seed of the random orders (default 0)")
    fa.add_argument("--json", action="store_true", help="print one JSON object")
    fa.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    limits = get_settings().limits
    check_text(args.text_a, "A", limits.max_text_chars)  # every check before the model loads
    check_text(args.text_b, "B", limits.max_text_chars)
    options = options_from_args(args)
    options.check_limits(limits)
    model = load_model(args.model, device=options.device or limits.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kept in each result's warnings, printed below
        report = faithfulness_report(
            model, args.text_a, args.text_b, options, methods=args.methods, op=args.op, level=args.level,
            order=args.order, draws=args.draws, seed=args.seed, limits=limits,
        )  # fmt: skip
    for name, result in report.results.items():
        for message in result.warnings:
            print(f"pairlens: warning ({method_label(name)}): {message}", file=sys.stderr)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    print(report_text(report))
    return 0


def _rho(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.3f}"


def report_text(report: FaithfulnessReport) -> str:
    """Readable summary: per method the rank agreement and the areas, then each unit's loss and attributions."""
    first = next(iter(report.sweeps.values()))
    curves = report.curves
    edit = f"masked with {first.pad_token}" if first.op == "mask" else "dropped"
    lines = [
        f"score {first.score:+.4f}; each {first.level} {edit} "
        f"in turn; curves by {curves.order} order, random = mean of {curves.draws} draws",
        f"{'method':<52} {'Spearman':>9} {'deletion':>9} {'insertion':>9} {'del. gain':>9}",
    ]
    for name, sweep in report.sweeps.items():
        lines.append(
            f"{method_label(name):<52} {_rho(sweep.spearman):>9} {curves.curve(name, 'deletion').area:>9.4f} "
            f"{curves.curve(name, 'insertion').area:>9.4f} {curves.between(name):>+9.4f}"
        )
    lines.append(
        f"{'random order':<52} {'':>9} {curves.curve(RANDOM, 'deletion').area:>9.4f} "
        f"{curves.curve(RANDOM, 'insertion').area:>9.4f}"
    )
    lines.append("deletion: area under score vs fraction removed (smaller = the order finds what matters sooner);")
    lines.append("del. gain: random's deletion area minus the method's (positive: faster than random)")
    names = list(report.sweeps)
    header = f"{'text':<4} {'unit':<18} {'loss':>9} " + " ".join(f"{n[:22]:>23}" for n in names)
    lines += ["what the model loses without each unit (sorted), next to each map's attribution:", header]
    order = sorted(range(len(first.items)), key=lambda k: -first.items[k].loss)
    for k in order:
        item = first.items[k]
        cells = []
        for n in names:
            other = report.sweeps[n].items[k]
            mark = " ≠" if other.disagrees else "  "
            cells.append(f"{other.attribution:>+21.4f}{mark}")
        lines.append(f"{item.side.upper():<4} {item.label[:18]:<18} {item.loss:>+9.4f} " + " ".join(cells))
    lines.append("≠: " + first.disagreement_rule)
    return "\n".join(lines)
