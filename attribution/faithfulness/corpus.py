"""Faithfulness over a corpus: deletion curves and sweeps for a sample of pairs, one table per method and layer.

    pairlens faithfulness-corpus pairs.tsv --sample 50 --layers 3 5 --out faith/ [--methods ...] [--op mask]

For each sampled pair, each layer and each method: the deletion and insertion areas of the method's order
and of random order, the deletion gain over random (random's area minus the method's), and Spearman's rho
of the map against the perturbation sweep. The table has one row per (method, layer): pairs, mean and median
of each, and the share of pairs where the method's order deletes score faster than random. Written: the
per-pair rows (pairs.csv) and the table (table.csv, table.md) under --out.

The sample is seeded (--seed) and spread over the file. Each pair is explained once per method and layer;
the edited versions of a pair are embedded once per layer (the model's score of an edit does not depend on
the layer), so the cost is dominated by the explain calls and the random orders.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..core.options import ExplainOptions, Limits, add_explain_options, options_from_args
from ..errors import InputError
from ..models import LoadedModel, load_model
from ..settings import DEFAULT_MODEL, get_settings
from ..workflows.data import read_pairs
from .curves import DEFAULT_DRAWS, ORDERS, RANDOM
from .methods import DEFAULT_METHOD, METHODS, SECOND_METHOD, method_label
from .report import check_methods, faithfulness_report
from .scoring import OPS
from .units import LEVELS

MAX_SAMPLE = 100_000


@dataclass(frozen=True)
class PairRow:
    """One pair, one layer, one method."""

    pair: int  # index of the pair in the file's usable pairs
    layer: int
    method: str
    units: int  # units of both texts (tokens or words, specials excluded)
    deletion_area: float
    insertion_area: float
    random_deletion_area: float
    random_insertion_area: float
    deletion_gain: float  # random_deletion_area - deletion_area (positive: faster than random)
    spearman: float  # map vs sweep (NaN when undefined)
    spearman_target: float  # map vs the sweep's target loss
    relative_error: float  # the result's |sum - target| / |target| (Hessian x input: the one-node gap)


@dataclass(frozen=True)
class TableRow:
    """One (method, layer) of the corpus table."""

    method: str
    layer: int
    pairs: int
    deletion_area_mean: float
    deletion_area_median: float
    random_deletion_area_mean: float
    deletion_gain_mean: float
    faster_than_random: float  # share of pairs with deletion_gain > 0
    insertion_area_mean: float
    spearman_mean: float  # over pairs where it is defined
    spearman_median: float


@dataclass(frozen=True)
class CorpusFaithfulness:
    """The per-pair rows and their table."""

    rows: list[PairRow]
    op: str
    level: str
    order: str
    draws: int
    seconds: float

    def table(self) -> list[TableRow]:
        out = []
        keys = list(dict.fromkeys((r.method, r.layer) for r in self.rows))
        for method, layer in sorted(keys, key=lambda k: (METHODS.index(k[0]) if k[0] in METHODS else 99, k[1])):
            rows = [r for r in self.rows if r.method == method and r.layer == layer]
            rho = np.array([r.spearman for r in rows if math.isfinite(r.spearman)])
            deletion = np.array([r.deletion_area for r in rows])
            gain = np.array([r.deletion_gain for r in rows])
            out.append(
                TableRow(
                    method=method,
                    layer=layer,
                    pairs=len(rows),
                    deletion_area_mean=float(deletion.mean()),
                    deletion_area_median=float(np.median(deletion)),
                    random_deletion_area_mean=float(np.mean([r.random_deletion_area for r in rows])),
                    deletion_gain_mean=float(gain.mean()),
                    faster_than_random=float((gain > 0).mean()),
                    insertion_area_mean=float(np.mean([r.insertion_area for r in rows])),
                    spearman_mean=float(rho.mean()) if len(rho) else math.nan,
                    spearman_median=float(np.median(rho)) if len(rho) else math.nan,
                )
            )
        return out


def sample_indices(n_pairs: int, sample: int, seed: int) -> list[int]:
    """`sample` distinct indices of n_pairs, seeded, in file order (all of them when sample >= n_pairs)."""
    if sample >= n_pairs:
        return list(range(n_pairs))
    return sorted(int(k) for k in np.random.default_rng(seed).choice(n_pairs, size=sample, replace=False))


def corpus_faithfulness(
    model: LoadedModel,
    pairs: Sequence[tuple[str, str]],
    options: ExplainOptions,
    *,
    layers: Sequence[int | None] = (None,),
    methods: Sequence[str] = (DEFAULT_METHOD, SECOND_METHOD),
    op: str = "mask",
    level: str = "token",
    order: str = "unit",
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    on_pair: Callable[[int, int], None] | None = None,
    limits: Limits | None = None,
) -> CorpusFaithfulness:
    """Rows for every pair x layer x method (`indices`: the pairs' numbers in the file, default 0..n-1).

    layers: None is the model's default layer. on_pair(done, total) is called after each pair and layer.
    """
    chosen = check_methods(methods)
    started = time.perf_counter()
    numbers = list(indices) if indices is not None else list(range(len(pairs)))
    rows: list[PairRow] = []
    total, done = len(pairs) * len(layers), 0
    for layer in layers:
        for number, (text_a, text_b) in zip(numbers, pairs, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # not-converged notes and the second method's label
                report = faithfulness_report(
                    model, text_a, text_b, options.replace(layer=layer), methods=chosen, op=op, level=level,
                    order=order, draws=draws, seed=seed + number, limits=limits,
                )  # fmt: skip
            curves = report.curves
            for method in chosen:
                sweep, result = report.sweeps[method], report.results[method]
                rows.append(
                    PairRow(
                        pair=number,
                        layer=result.layer,
                        method=method,
                        units=len(sweep.items),
                        deletion_area=curves.curve(method, "deletion").area,
                        insertion_area=curves.curve(method, "insertion").area,
                        random_deletion_area=curves.curve(RANDOM, "deletion").area,
                        random_insertion_area=curves.curve(RANDOM, "insertion").area,
                        deletion_gain=curves.between(method, "deletion"),
                        spearman=sweep.spearman,
                        spearman_target=sweep.spearman_target,
                        relative_error=result.relative_error,
                    )
                )
            done += 1
            if on_pair is not None:
                on_pair(done, total)
    return CorpusFaithfulness(rows, op, level, order, draws, time.perf_counter() - started)


def _cell(value: Any) -> Any:
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def write_csv(path: Path, items: Sequence[Any]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if not items:
            return
        writer.writerow([f.name for f in fields(items[0])])
        for item in items:
            writer.writerow([_cell(v) for v in asdict(item).values()])


def table_markdown(table: Sequence[TableRow]) -> str:
    """The table for people (and docs): one row per method and layer."""
    lines = [
        "| method | layer | pairs | deletion area (mean / median) | random deletion area | deletion gain | "
        "faster than random | insertion area | Spearman (mean / median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        lines.append(
            f"| {method_label(t.method)} | {t.layer} | {t.pairs} | {t.deletion_area_mean:.4f} / "
            f"{t.deletion_area_median:.4f} | {t.random_deletion_area_mean:.4f} | {t.deletion_gain_mean:+.4f} | "
            f"{100 * t.faster_than_random:.0f} % | {t.insertion_area_mean:.4f} | {t.spearman_mean:+.3f} / "
            f"{t.spearman_median:+.3f} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def add_parser(sub: Any) -> None:
    fc = sub.add_parser(
        "faithfulness-corpus",
        help="deletion curves and perturbation sweeps for a sample of a pairs file: a table per method and layer",
    )
    fc.add_argument("data", help="pairs file (STS Benchmark, CSV/TSV with a header, JSON Lines)")
    fc.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})")
    add_explain_options(fc)
    fc.add_argument("--layers", type=int, nargs="+", default=None, help="layers to compare (default: --layer)")
    fc.add_argument("--sample", type=int, default=50, help="pairs to sample from the file (default 50)")
    fc.add_argument("--methods", nargs="+", choices=METHODS, default=[DEFAULT_METHOD, SECOND_METHOD])
    fc.add_argument("--op", choices=OPS, default="mask", help="mask: the pad token (default); drop: delete")
    fc.add_argument("--level", choices=LEVELS, default="token")
    fc.add_argument("--order", choices=ORDERS, default="unit")
    fc.add_argument("--draws", type=int, default=DEFAULT_DRAWS, help="random orders per pair (default 5)")
    fc.add_argument("--seed", type=int, default=0, help="seed of the sample and of the random orders")
    fc.add_argument("--out", required=True, help="folder for pairs.csv, table.csv and table.md")
    fc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.sample <= MAX_SAMPLE:
        raise InputError(f"--sample must be from 1 to {MAX_SAMPLE} pairs (got {args.sample}).")
    if args.draws < 1 or args.draws > 100:
        raise InputError(f"--draws must be from 1 to 100 (got {args.draws}).")
    limits = get_settings().limits
    options = options_from_args(args)
    options.check_limits(limits)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file: give a folder for the tables.")
    data = read_pairs(args.data)
    print(data.summary(), file=sys.stderr)
    indices = sample_indices(len(data.pairs), args.sample, args.seed)
    pairs = [(data.pairs[k].text_a, data.pairs[k].text_b) for k in indices]
    model = load_model(args.model, device=options.device or limits.device)
    layers = args.layers if args.layers else [options.layer]
    for layer in layers:
        if layer is not None and not 0 <= layer <= model.num_layers:
            raise InputError(f"--layers: {model.name} has layers 0 to {model.num_layers} (got {layer}).")

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} pairs x layers", end="", file=sys.stderr, flush=True)

    result = corpus_faithfulness(
        model, pairs, options, layers=layers, methods=args.methods, op=args.op, level=args.level, order=args.order,
        draws=args.draws, seed=args.seed, indices=indices, on_pair=progress, limits=limits,
    )  # fmt: skip
    print(file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    table = result.table()
    write_csv(out / "pairs.csv", result.rows)
    write_csv(out / "table.csv", table)
    text = table_markdown(table)
    (out / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"{len(pairs)} pairs, {result.seconds:.0f} s; rows in {out / 'pairs.csv'}, table in {out / 'table.csv'}")
    return 0
