"""explain_many against a loop of explain() on STS-B test pairs (pairs/s ratio measured in one run).

    python benchmarks/bench_many.py [--pairs 200] [--chunk 20] [--layer L] [--model all-MiniLM-L6-v2]
                                    [--threads 2] [--out benchmarks/many_results.md]

The pairs are cut into chunks; in each chunk the loop of explain(pos=False) and explain_many
take turns (which goes first alternates), so load changes on the shared machine hit both
alike. Reported: wall seconds and process-CPU seconds (all threads: this process's own work)
per run, pairs/s and the speed-up of both, per-chunk speed-ups (median), the load average, and
the largest relative difference between the matrices (same options and nodes: float rounding).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stsb import sample_pairs as sample_stsb  # noqa: E402
from timing import wall_and_cpu  # noqa: E402

from attribution import explain, explain_many, load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    pairs = sample_stsb(args.pairs)
    warm = pairs[:2]
    explain(model, *warm[0], layer=args.layer, pos=False)
    explain_many(model, warm, layer=args.layer)
    names = ("loop of explain()", "explain_many")
    runs = {
        names[0]: lambda ps: [explain(model, a, b, layer=args.layer, pos=False) for a, b in ps],
        names[1]: lambda ps: explain_many(model, ps, layer=args.layer),
    }
    wall = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    ratios: list[float] = []
    worst = 0.0
    same_steps = 0
    loads = [os.getloadavg()[0]]
    for c, k0 in enumerate(range(0, len(pairs), args.chunk)):
        chunk = pairs[k0 : k0 + args.chunk]
        order = names if c % 2 == 0 else names[::-1]
        results, chunk_wall = {}, {}
        for name in order:
            w, t, out = wall_and_cpu(lambda name=name, chunk=chunk: runs[name](chunk))
            wall[name] += w
            cpu[name] += t
            chunk_wall[name] = w
            results[name] = out
        ratios.append(chunk_wall[names[0]] / chunk_wall[names[1]])
        for got, ref in zip(results[names[1]], results[names[0]], strict=True):
            worst = max(worst, float(np.abs(got.matrix - ref.matrix).max() / np.abs(ref.matrix).max()))
            same_steps += got.steps == ref.steps
        loads.append(os.getloadavg()[0])
        print(
            f"chunk {c}: loop {chunk_wall[names[0]]:.1f}s, explain_many {chunk_wall[names[1]]:.1f}s, "
            f"x{ratios[-1]:.2f}, load {loads[-1]:.1f}",
            flush=True,
        )
    n = len(pairs)
    layer = args.layer if args.layer is not None else model.default_layer
    lines = [
        f"### {args.model}, layer {layer}, {n} STS-B test pairs, steps='auto' (default options), "
        f"chunks of {args.chunk}, torch threads {args.threads}",
        "",
        "| run | wall s | pairs/s (wall) | speed-up (wall) | CPU s | pairs per CPU s | speed-up (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        lines.append(
            f"| {name} | {wall[name]:.1f} | {n / wall[name]:.2f} | {wall[names[0]] / wall[name]:.2f}x "
            f"| {cpu[name]:.1f} | {n / cpu[name]:.2f} | {cpu[names[0]] / cpu[name]:.2f}x |"
        )
    lines += [
        "",
        f"Median per-chunk speed-up (wall): {statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, "
        f"max {max(ratios):.2f}x). Same N as the loop: {same_steps}/{n} pairs; largest relative matrix "
        f"difference (max norm) {worst:.1e}. 1-minute load average during the run: median "
        f"{statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f}) on {os.cpu_count()} cores.",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
