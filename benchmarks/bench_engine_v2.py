"""Engine v2 (issue 11 part A): structured entry layer and adaptive integration, against the old engine.

    python benchmarks/bench_engine_v2.py throughput [--model all-MiniLM-L6-v2] [--steps 8] [--repeat 3]
    python benchmarks/bench_engine_v2.py adaptive [--model all-MiniLM-L6-v2] [--layers 3,5] [--pairs 20]
    python benchmarks/bench_engine_v2.py agreement [--model all-mpnet-base-v2] [--layers 9,6] [--pairs 20]
    python benchmarks/bench_engine_v2.py floor [--model all-mpnet-base-v2] [--layer 6] [--pairs 20]
    python benchmarks/bench_engine_v2.py derive [--model all-mpnet-base-v2] [--layer 6] [--pairs 20]

throughput: two ~256-token texts at the model's default layer, N-node Gauss-Legendre, the generic
vmap(jvp) node evaluation (NodeEvaluator.use_structured = False: the old engine) against the structured
entry layer, interleaved with a 1024^3 fp32 matmul rate, `--repeat` rounds, medians. Useful work =
2 x N x sum over texts of S x F (F = FLOPs of one plain forward through the tail, FlopCounterMode).
Rates are given per wall second and per process-CPU second / threads (the machine is shared: CPU
seconds measure this process's own work); "useful / matmul" is the ratio of the two rates in this run.

adaptive: STS-B test pairs (bench_engine's sampling), per layer and pair interleaved: the old steps="auto"
schedule for Gauss-Legendre (N = 8 or 32, doubling, no node reused; a copy below) against the adaptive
rule (engine.integrate), both from the same prepare_pair; wall and CPU seconds, S-tangent nodes
evaluated (both texts), relative error, certified bound, max |A_new - A_old| / max |A_old|.

agreement: STS-B test pairs, per layer: steps="auto" at --tol (timed, fresh prepare_pair), then on the same
prepared pair a reference run at --reference-tol, at most --reference-cap nodes per text (its nodes reuse the
first run's, so only the first run is timed); per pair converged, seconds, nodes evaluated, certified bound,
and max |A - A_ref| / max |A_ref|.

floor: what the certificate's own mesh costs at best. Per pair: the adaptive rule at --tol (timed), the nodes
its final meshes hold (used, both texts), then on the same pair 32 fresh S-tangent nodes and 32 primal points
per text, timed in one batch each. floor = sum over texts of used nodes x seconds per node: the time of the
slices the final mesh needs with no node discarded, no mesh search and no primal forward, at the best batch.
"slice / primal" compares a node with (S + 1) primal forwards (1.0: tangents as cheap as plain forwards).

derive: the adaptive rule with bisection children given d f / da first (derive="children", the default)
against slices at once (derive="none", the rule before), per pair interleaved in alternating order, each from
its own prepare_pair: wall and CPU seconds, slices evaluated, nodes used, nodes derived, max |A - A_none| /
max |A_none|.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stsb import sample_pairs as sample_stsb  # noqa: E402
from timing import wall_and_cpu  # noqa: E402

from attribution import load_model  # noqa: E402
from attribution.core.adaptive import integrate_adaptive  # noqa: E402
from attribution.core.engine import PairPaths, integrate, prepare_pair  # noqa: E402
from attribution.core.options import ExplainOptions  # noqa: E402
from attribution.core.quadrature import auto_schedule  # noqa: E402

LONG_A = " ".join(f"word{i}" for i in range(400))
LONG_B = " ".join(f"token{i} is here" for i in range(200))


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def matmul_rates(size: int = 1024, seconds: float = 2.0) -> tuple[float, float]:
    """fp32 (size^2) @ (size^2) GFLOP/s: (per wall second, per CPU second / threads)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - w0 < seconds:
        a @ b
        n += 1
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    gflop = 2 * size**3 * n / 1e9
    return gflop / wall, gflop / cpu * torch.get_num_threads()


def peak_rss_gib() -> float:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def rel_maxdiff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    return float((a - e).abs().max() / e.abs().max())


def load_avg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


# ------------------------------------------------------------------------------------------------ throughput


def throughput(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    options = ExplainOptions(steps=args.steps, direction="forward").for_model(model)
    assert options.layer is not None
    probe = prepare_pair(model, LONG_A, LONG_B, options)
    tail = probe.evaluator.tail
    flops = []
    for path in (probe.a, probe.b):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            tail(path.h[None])
        flops.append(counter.get_total_flops())
    seqs = [probe.a.h.shape[0], probe.b.h.shape[0]]
    useful = 2 * args.steps * sum(s * f for s, f in zip(seqs, flops, strict=True)) / 1e9
    fast = probe.evaluator.structured
    print(
        f"# {args.model}, layer {options.layer}, S = {seqs}, N = {args.steps} (gauss-legendre), forward "
        f"{[round(f / 1e9, 3) for f in flops]} GFLOP, useful work {useful:.1f} GFLOP, torch threads "
        f"{torch.get_num_threads()}, structured: {fast is not None} (hand last layer: "
        f"{fast is not None and fast.head is not None}), load average at start {load_avg()}"
    )

    def run(structured: bool) -> tuple[torch.Tensor, float]:
        pair = prepare_pair(model, LONG_A, LONG_B, options)
        pair.evaluator.use_structured = structured
        done = integrate(pair, options)
        return done.matrix, done.relative

    names = {"old": "old engine (generic vmap(jvp))", "structured": "structured entry layer"}
    variants = [(names[v], v == "structured") for v in args.variants.split(",")]
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    rates: list[tuple[float, float]] = []
    results: dict[str, tuple[torch.Tensor, float]] = {}
    for k in range(args.repeat):
        rates.append(matmul_rates())
        for name, structured in variants:
            wall, cpu, out = wall_and_cpu(lambda s=structured: run(s))  # type: ignore[misc]
            rows[name].append((wall, cpu))
            results[name] = out
            print(f"round {k}: {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, load {load_avg()}", flush=True)
    mm_wall, mm_cpu = median([r[0] for r in rates]), median([r[1] for r in rates])
    threads = torch.get_num_threads()
    base = results[variants[0][0]]  # the first variant: differences are against it
    print(f"\nfp32 matmul rate (1024^3, median of {args.repeat}): {mm_wall:.1f} GFLOP/s wall, {mm_cpu:.1f} per CPU")
    print("\n| variant | median wall s | median CPU s | useful / matmul (wall) | useful / matmul (CPU) "
          f"| relative error | max rel. diff vs {variants[0][0]} |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, times in rows.items():
        wall, cpu = median([t[0] for t in times]), median([t[1] for t in times])
        matrix, relative = results[name]
        per_cpu = useful / (cpu / threads) / mm_cpu
        print(
            f"| {name} | {wall:.1f} | {cpu:.1f} | {useful / wall / mm_wall:.0%} | {per_cpu:.0%} "
            f"| {relative:.1e} | {rel_maxdiff(matrix, base[0]):.1e} |"
        )
    if len(rows) == 2:
        old = median([t[1] for t in rows[names["old"]]])
        new = median([t[1] for t in rows[names["structured"]]])
        print(f"\nspeed-up (CPU seconds, medians): {old / new:.2f}x")
    print(f"peak RSS of this process {peak_rss_gib():.2f} GiB")


# ------------------------------------------------------------------------------------------------ adaptive


def old_schedule(pair: PairPaths, options: ExplainOptions) -> tuple[torch.Tensor, float, int]:
    """The steps="auto" of main before issue 11 for Gauss-Legendre: N = 8 (32 at layer 0), doubling."""
    assert options.layer is not None
    matrix, relative, n = torch.zeros(0), float("nan"), 0
    for n in auto_schedule(options.rule, options.step_cap, options.layer):
        matrix = pair.matrix(options.rule, n)
        relative = pair.completeness.relative_error(float(matrix.double().sum()))
        if relative <= options.tolerance:
            break
    return matrix, relative, n


def run_old(model: Any, a: str, b: str, options: ExplainOptions) -> tuple[Any, ...]:
    pair = prepare_pair(model, a, b, options)
    return (*old_schedule(pair, options), len(pair.a.evaluated) + len(pair.b.evaluated))


def run_new(model: Any, a: str, b: str, options: ExplainOptions) -> tuple[Any, ...]:
    pair = prepare_pair(model, a, b, options)
    done = integrate(pair, options)
    return done, len(pair.a.evaluated) + len(pair.b.evaluated)


def adaptive(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    pairs = sample_stsb(args.pairs)
    print(f"# {args.model}, {len(pairs)} STS-B test pairs, tolerance {args.tol:g}, torch threads "
          f"{torch.get_num_threads()}, load average at start {load_avg()}")  # fmt: skip
    summary = []
    for layer in [int(x) for x in args.layers.split(",")]:
        options = ExplainOptions(layer=layer, tolerance=args.tol).for_model(model)
        rows = []
        for k, (a, b) in enumerate(pairs):
            if args.only and k not in args.only:
                continue
            old = lambda a=a, b=b, o=options: run_old(model, a, b, o)  # noqa: E731
            new = lambda a=a, b=b, o=options: run_new(model, a, b, o)  # noqa: E731
            order = (("old", old), ("new", new)) if k % 2 == 0 else (("new", new), ("old", old))
            out: dict[str, Any] = {}
            for name, fn in order:
                out[name] = wall_and_cpu(fn)
            (ow, oc, (om, orel, on, onodes)), (nw, nc, (done, nnodes)) = out["old"], out["new"]
            row = {
                "old_s": ow, "old_cpu": oc, "old_nodes": onodes, "old_rel": orel, "old_n": on,
                "new_s": nw, "new_cpu": nc, "new_nodes": nnodes, "new_rel": done.relative, "steps": done.steps,
                "bound": done.error_bound, "converged": done.converged, "diff": rel_maxdiff(done.matrix, om),
            }  # fmt: skip
            rows.append(row)
            print(f"layer {layer} pair {k}: " + ", ".join(f"{key} {v:.3g}" if isinstance(v, float) else f"{key} {v}"
                                                         for key, v in row.items()), flush=True)  # fmt: skip
        summary.append((layer, rows))
    print(f"\nload average at end {load_avg()}")
    print("\n| layer | pairs | converged | old median s | new median s | old median CPU s | new median CPU s "
          "| CPU ratio new/old (median of per-pair) | old median nodes | new median nodes | max rel. error new "
          "| max bound new | max diff new vs old |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for layer, rows in summary:
        print(
            f"| {layer} | {len(rows)} | {sum(r['converged'] for r in rows)}/{len(rows)} "
            f"| {median([r['old_s'] for r in rows]):.2f} | {median([r['new_s'] for r in rows]):.2f} "
            f"| {median([r['old_cpu'] for r in rows]):.2f} | {median([r['new_cpu'] for r in rows]):.2f} "
            f"| {median([r['new_cpu'] / r['old_cpu'] for r in rows]):.2f} "
            f"| {median([r['old_nodes'] for r in rows]):.0f} | {median([r['new_nodes'] for r in rows]):.0f} "
            f"| {max(r['new_rel'] for r in rows):.1e} | {max(r['bound'] for r in rows):.1e} "
            f"| {max(r['diff'] for r in rows):.1e} |"
        )
    _ = np


def agreement(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    pairs = sample_stsb(args.pairs)
    print(f"# {args.model}, {len(pairs)} STS-B test pairs, tolerance {args.tol:g} against {args.reference_tol:g}, "
          f"torch threads {torch.get_num_threads()}, load average at start {load_avg()}")  # fmt: skip
    for layer in [int(x) for x in args.layers.split(",")]:
        options = ExplainOptions(layer=layer, tolerance=args.tol).for_model(model)
        reference = options.replace(tolerance=args.reference_tol, step_cap=args.reference_cap)
        rows = []
        for k, (a, b) in enumerate(pairs):
            if args.only and k not in args.only:
                continue
            wall, cpu, (pair, done) = wall_and_cpu(lambda a=a, b=b, o=options: _prepared_and_integrated(model, a, b, o))
            nodes = len(pair.a.evaluated) + len(pair.b.evaluated)
            row: dict[str, Any] = {
                "tokens": f"{pair.a.h.shape[0]}+{pair.b.h.shape[0]}", "s": wall, "cpu": cpu, "nodes": nodes,
                "converged": done.converged, "rel": done.relative, "bound": done.error_bound,
            }  # fmt: skip
            if not args.no_reference:
                ref_wall, _, ref = wall_and_cpu(lambda pair=pair, o=reference: integrate(pair, o))
                row |= {
                    "ref_converged": ref.converged, "ref_rel": ref.relative, "ref_bound": ref.error_bound,
                    "ref_s": ref_wall, "ref_nodes": len(pair.a.evaluated) + len(pair.b.evaluated),
                    "agreement": rel_maxdiff(done.matrix, ref.matrix),
                }  # fmt: skip
            rows.append(row)
            print(f"layer {layer} pair {k}: " + ", ".join(f"{key} {v:.3g}" if isinstance(v, float) else f"{key} {v}"
                                                         for key, v in row.items()), flush=True)  # fmt: skip
        print(f"\nload average {load_avg()}")
        print(
            "\n| layer | pairs | converged | median s | max s | median CPU s | median nodes (both texts) "
            "| max rel. error | max bound/target | reference converged | max agreement (max-norm, relative) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print(
            f"| {layer} | {len(rows)} | {sum(r['converged'] for r in rows)}/{len(rows)} "
            f"| {median([r['s'] for r in rows]):.2f} | {max(r['s'] for r in rows):.2f} "
            f"| {median([r['cpu'] for r in rows]):.2f} | {median([r['nodes'] for r in rows]):.0f} "
            f"| {max(r['rel'] for r in rows):.1e} | {max(r['bound'] for r in rows):.1e} "
            + (
                "| - | - |\n"
                if args.no_reference
                else f"| {sum(r['ref_converged'] for r in rows)}/{len(rows)} "
                f"| {max(r['agreement'] for r in rows):.1e} |\n"
            ),
            flush=True,
        )


def floor(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    pairs = sample_stsb(args.pairs)
    options = ExplainOptions(layer=args.layer, tolerance=args.tol).for_model(model)
    assert options.layer is not None
    print(f"# {args.model}, layer {options.layer}, {len(pairs)} STS-B test pairs, tolerance {args.tol:g}, torch "
          f"threads {torch.get_num_threads()}, load average at start {load_avg()}")  # fmt: skip
    rows = []
    for k, (a, b) in enumerate(pairs):
        if args.only and k not in args.only:
            continue
        pair = prepare_pair(model, a, b, options)
        wall, cpu, done = wall_and_cpu(
            lambda pair=pair: integrate_adaptive(pair, options.layer, options.tolerance, options.step_cap)
        )
        evaluated = len(pair.a.evaluated) + len(pair.b.evaluated)
        fresh = np.linspace(0.0, 1.0, 34)[1:-1] + 1e-7  # nodes no rule uses
        per_node, per_primal = [], []
        for path in (pair.a, pair.b):
            t0 = time.perf_counter()
            pair.evaluator.evaluate(path, fresh)
            per_node.append((time.perf_counter() - t0) / len(fresh))
            x = path.r + torch.as_tensor(fresh, dtype=path.h.dtype)[:, None, None] * (path.h - path.r)
            t0 = time.perf_counter()
            with torch.no_grad():
                pair.evaluator.tail(x)
            per_primal.append((time.perf_counter() - t0) / len(fresh))
        cost = done.used_a * per_node[0] + done.used_b * per_node[1]
        sizes = (pair.a.h.shape[0], pair.b.h.shape[0])
        row: dict[str, Any] = {
            "tokens": f"{sizes[0]}+{sizes[1]}", "s": wall, "cpu": cpu, "converged": done.converged,
            "used": done.used_a + done.used_b, "evaluated": evaluated, "s_per_node": sum(per_node) / 2,
            "slice_per_primal": sum(n / ((s + 1) * p) for n, p, s in zip(per_node, per_primal, sizes, strict=True)) / 2,
            "floor_s": cost, "s_over_floor": wall / cost,
        }  # fmt: skip
        rows.append(row)
        print(f"pair {k}: " + ", ".join(f"{key} {v:.3g}" if isinstance(v, float) else f"{key} {v}"
                                       for key, v in row.items()), flush=True)  # fmt: skip
    print(f"\nload average at end {load_avg()}")
    print("\n| layer | pairs | converged | median s | median floor s | pairs with floor > 10 s | median s / floor "
          "| median nodes used / evaluated | median s per node | median slice / ((S+1) primal) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {options.layer} | {len(rows)} | {sum(r['converged'] for r in rows)}/{len(rows)} "
        f"| {median([r['s'] for r in rows]):.2f} | {median([r['floor_s'] for r in rows]):.2f} "
        f"| {sum(r['floor_s'] > 10 for r in rows)} | {median([r['s_over_floor'] for r in rows]):.2f} "
        f"| {median([r['used'] for r in rows]):.0f} / {median([r['evaluated'] for r in rows]):.0f} "
        f"| {median([r['s_per_node'] for r in rows]):.3f} | {median([r['slice_per_primal'] for r in rows]):.2f} |"
    )


def derive(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    pairs = sample_stsb(args.pairs)
    options = ExplainOptions(layer=args.layer, tolerance=args.tol).for_model(model)
    assert options.layer is not None
    print(f"# {args.model}, layer {options.layer}, {len(pairs)} STS-B test pairs, tolerance {args.tol:g}, torch "
          f"threads {torch.get_num_threads()}, load average at start {load_avg()}")  # fmt: skip
    modes = ("none", "children")
    rows = []
    for k, (a, b) in enumerate(pairs):
        if args.only and k not in args.only:
            continue
        out: dict[str, Any] = {}
        for mode in modes if k % 2 == 0 else modes[::-1]:
            pair = prepare_pair(model, a, b, options)
            out[mode] = wall_and_cpu(
                lambda pair=pair, mode=mode: integrate_adaptive(
                    pair, options.layer, options.tolerance, options.step_cap, derive=mode
                )
            )
        (ow, oc, old), (nw, nc, new) = out["none"], out["children"]
        norm = pair.completeness.norm
        row: dict[str, Any] = {
            "tokens": f"{pair.a.h.shape[0]}+{pair.b.h.shape[0]}", "none_s": ow, "none_cpu": oc,
            "none_slices": old.nodes_a + old.nodes_b, "children_s": nw, "children_cpu": nc,
            "children_slices": new.nodes_a + new.nodes_b, "used": new.used_a + new.used_b, "derived": new.derived,
            "converged": f"{old.converged}/{new.converged}",
            "diff": rel_maxdiff(new.e_a.T @ new.e_b / norm, old.e_a.T @ old.e_b / norm),
        }  # fmt: skip
        rows.append(row)
        print(f"pair {k}: " + ", ".join(f"{key} {v:.3g}" if isinstance(v, float) else f"{key} {v}"
                                       for key, v in row.items()), flush=True)  # fmt: skip
    print(f"\nload average at end {load_avg()}")
    print("\n| layer | pairs | none median s | children median s | none median CPU s | children median CPU s "
          "| CPU ratio children/none (median of per-pair) | CPU s in all none / children | median slices none "
          "| median slices children | median nodes derived | max diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {options.layer} | {len(rows)} | {median([r['none_s'] for r in rows]):.2f} "
        f"| {median([r['children_s'] for r in rows]):.2f} | {median([r['none_cpu'] for r in rows]):.2f} "
        f"| {median([r['children_cpu'] for r in rows]):.2f} "
        f"| {median([r['children_cpu'] / r['none_cpu'] for r in rows]):.2f} "
        f"| {sum(r['none_cpu'] for r in rows):.0f} / {sum(r['children_cpu'] for r in rows):.0f} "
        f"| {median([r['none_slices'] for r in rows]):.0f} | {median([r['children_slices'] for r in rows]):.0f} "
        f"| {median([r['derived'] for r in rows]):.0f} | {max(r['diff'] for r in rows):.1e} |"
    )


def _prepared_and_integrated(model: Any, a: str, b: str, options: ExplainOptions) -> tuple[PairPaths, Any]:
    pair = prepare_pair(model, a, b, options)
    return pair, integrate(pair, options)


def indices(text: str) -> set[int]:
    """'0-3,7' -> {0, 1, 2, 3, 7}."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def pair_study(
    sub: Any, name: str, model: str, *, layers: str | None = None, layer: int | None = None
) -> argparse.ArgumentParser:
    """A subcommand over STS-B test pairs: --model, --layers (or --layer), --pairs, --tol, --only."""
    p: argparse.ArgumentParser = sub.add_parser(name)
    p.add_argument("--model", default=model)
    if layers is not None:
        p.add_argument("--layers", default=layers)
    else:
        p.add_argument("--layer", type=int, default=layer)
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--only", type=indices, default=None, help="pair indices, e.g. 0-12,15-19")
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="all-MiniLM-L6-v2")
    t.add_argument("--steps", type=int, default=8)
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--variants", default="old,structured", help="comma list of old, structured")
    pair_study(sub, "adaptive", "all-MiniLM-L6-v2", layers="3,5")
    pair_study(sub, "floor", "all-mpnet-base-v2", layer=6)
    pair_study(sub, "derive", "all-mpnet-base-v2", layer=6)
    g = pair_study(sub, "agreement", "all-mpnet-base-v2", layers="9,6")
    g.add_argument("--reference-tol", type=float, default=1e-5)
    g.add_argument("--reference-cap", type=int, default=None, help="nodes per text for the reference run")
    g.add_argument("--no-reference", action="store_true", help="time the tolerance run only")
    args = parser.parse_args()
    commands = [throughput, adaptive, agreement, floor, derive]
    {fn.__name__: fn for fn in commands}[args.what](args)


if __name__ == "__main__":
    main()
