"""Engine benchmark: time and integration error per (model, layer, rule, steps) on STS-B test
pairs, the speed ratio against the per-dimension reverse-mode baseline measured in the same run,
and peak resident memory for two 256-token texts.

    python benchmarks/bench_engine.py [--pairs 5] [--models all-MiniLM-L6-v2,all-mpnet-base-v2]
                                      [--part errors,auto,baseline,memory] [--layers 6,11]
                                      [--rules gauss-legendre,midpoint]

Prints markdown tables; every ratio is measured in this run. Timings are medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the autograd oracle

from oracle import per_dimension_integrated_jacobian  # noqa: E402
from stsb import sample_pairs as sample_stsb  # noqa: E402

from attribution import explain, load_model  # noqa: E402
from attribution.core.engine import prepare_path  # noqa: E402
from attribution.core.quadrature import quadrature_nodes  # noqa: E402

FALLBACK = [
    ("A man is playing a guitar on stage.", "Someone performs music with an instrument."),
    ("A woman is slicing an onion.", "A woman is cutting an onion."),
    ("Stocks fell sharply after the announcement.", "The market dropped following the news."),
    ("The cat sleeps on the warm windowsill.", "A dog runs through the park."),
    ("How do I learn Python quickly?", "What is the fastest way to learn Python?"),
]
RULES = ("gauss-legendre", "midpoint", "riemann-right")


def timed(fn, repeat: int):  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def layers_of(model, requested: list[int] | None) -> list[int]:  # type: ignore[no-untyped-def]
    """`requested`, or 0, the middle layer and the last layer's input."""
    n = model.num_layers
    return requested if requested is not None else sorted({0, n // 2, n - 1})


def part_errors(model, pairs, layers: list[int] | None, rules: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Median |relative integration error| per rule and N (deterministic: no timing)."""
    steps_list = (2, 4, 8, 16, 32, 64)
    print(f"\n### {model.name}: median |relative integration error| over {len(pairs)} pairs\n")
    print("| layer | rule | " + " | ".join(f"N={n}" for n in steps_list) + " |")
    print("|---|---|" + "---|" * len(steps_list))
    for layer in layers_of(model, layers):
        for rule in rules:
            cells = []
            for n in steps_list:
                results = [explain(model, a, b, layer=layer, steps=n, rule=rule, pos=False) for a, b in pairs]
                errs = [abs(res.relative_error) for res in results]
                cells.append(f"{statistics.median(errs):.1e}")
            print(f"| {layer} | {rule} | " + " | ".join(cells) + " |")


def part_auto(model, pairs, repeat: int, layers: list[int] | None, rules: list[str]) -> None:  # type: ignore[no-untyped-def]
    """steps="auto" per rule and layer: compute time (median over pairs) and nodes used."""
    print(f"\n### {model.name}: steps=auto, tolerance 1e-3 (median over {len(pairs)} pairs)\n")
    print("| layer | rule | median s | max s | median N | max rel. error | converged |")
    print("|---|---|---|---|---|---|---|")
    explain(model, *pairs[0], pos=False)  # warm-up
    for layer in layers_of(model, layers):
        for rule in rules:
            secs, ns, errs, ok = [], [], [], 0
            for a, b in pairs:
                t, res = timed(
                    lambda a=a, b=b, layer=layer, rule=rule: explain(model, a, b, layer=layer, rule=rule, pos=False),
                    repeat,
                )
                secs.append(t)
                ns.append(res.steps)
                errs.append(abs(res.relative_error))
                ok += res.converged
            print(
                f"| {layer} | {rule} | {statistics.median(secs):.2f} | {max(secs):.2f} | {statistics.median(ns):.0f} "
                f"| {max(errs):.1e} | {ok}/{len(pairs)} |"
            )


def part_baseline(model, pairs, layer: int, steps: int, repeat: int) -> None:  # type: ignore[no-untyped-def]
    """Forward-mode engine vs one backward pass per embedding dimension, same nodes, same run."""
    nodes, weights = quadrature_nodes("riemann-right", steps)
    tail = model.tail(layer)
    rows = []
    for a, b in pairs:
        t_engine, res = timed(
            lambda a=a, b=b: explain(model, a, b, layer=layer, steps=steps, rule="riemann-right", pos=False), repeat
        )

        def baseline(a: str = a, b: str = b) -> np.ndarray:
            es, embs = [], []
            for text in (a, b):
                path = prepare_path(model, text, layer, "")
                es.append(per_dimension_integrated_jacobian(tail, path.h, path.r, nodes, weights))
                embs.append(path.f)
            return ((es[0].T @ es[1]) / (embs[0].norm() * embs[1].norm())).double().numpy()

        t_base, mat = timed(baseline, 1)
        diff = float(np.abs(mat - res.matrix).max() / np.abs(mat).max())
        rows.append((len(res.a.tokens), len(res.b.tokens), t_engine, t_base, diff))
    print(f"\n### {model.name}: layer {layer}, riemann-right, N={steps}: engine vs per-dimension baseline\n")
    print("| tokens A x B | engine s | baseline s | speed-up | max rel. difference |")
    print("|---|---|---|---|---|")
    for size_a, size_b, te, tb, diff in rows:
        print(f"| {size_a} x {size_b} | {te:.2f} | {tb:.2f} | {tb / te:.1f}x | {diff:.1e} |")
    ratio = statistics.median(tb / te for _, _, te, tb, _ in rows)
    print(f"\nmedian speed-up: {ratio:.1f}x")


def part_memory(model_name: str) -> None:
    """Peak memory of a fresh process explaining two 256-token texts: N=8 at the default layer, N=1 at 0.

    Read from VmHWM in /proc/self/status: ru_maxrss survives execve on Linux, so a child started
    by a large benchmark process would report the parent's peak instead of its own.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "def hwm():\n"
        "    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "    return int(line.split()[1]) / 2**20\n"
        "from attribution import load_model, explain\n"
        f"m = load_model({model_name!r})\n"
        "base = hwm()\n"
        "text = ' '.join(f'word{i}' for i in range(400))\n"
        "r = explain(m, text, text[::-1], steps=8, pos=False)\n"
        "r0 = explain(m, text, text[::-1], layer=0, steps=1, pos=False)\n"
        "print(len(r.a.tokens), len(r.b.tokens), base, hwm(), r.seconds, r0.seconds)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    size_a, size_b, base, peak, t, t0 = out
    print(f"\n### {model_name}: {size_a}- and {size_b}-token texts, N=8 at the default layer, N=1 at layer 0\n")
    print(
        f"peak resident memory {float(peak):.2f} GiB (after loading: {float(base):.2f} GiB); target <= 3 GiB; "
        f"compute {float(t):.1f} s (default layer, N=8), {float(t0):.1f} s (layer 0, N=1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="all-MiniLM-L6-v2,all-mpnet-base-v2")
    parser.add_argument("--part", default="errors,auto,baseline,memory")
    parser.add_argument("--layers", default=None, help="comma-separated layers (default: 0, middle, last input)")
    parser.add_argument("--rules", default=",".join(RULES), help="comma-separated rules for the error and auto parts")
    args = parser.parse_args()
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    rules = args.rules.split(",")
    parts = set(args.part.split(","))
    pairs = sample_stsb(args.pairs, FALLBACK)
    print(
        f"# PairLens engine benchmark ({len(pairs)} STS-B test pairs; torch threads: "
        f"{__import__('torch').get_num_threads()})"
    )
    for name in args.models.split(","):
        model = load_model(name)
        if "errors" in parts:
            part_errors(model, pairs, layers, rules)
        if "auto" in parts:
            part_auto(model, pairs, args.repeat, layers, rules)
        if "baseline" in parts:
            part_baseline(model, pairs[:3], model.num_layers - 1, 10, args.repeat)
        if "memory" in parts:
            part_memory(name)
    print(f"\nbenchmark process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
