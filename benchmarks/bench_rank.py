"""explain_ranking against 20 separate explain() calls, and the scores-only ranking (issue 25 targets).

    python benchmarks/bench_rank.py [--candidates 20] [--repeats 3] [--model all-MiniLM-L6-v2]
                                    [--threads 1] [--out benchmarks/rank_results.md] [--data sts-test.csv]

One query (the first sentence of STS-B test pair 0) against the B sentences of `--candidates` STS-B
test pairs spread over the file, MiniLM at its default layer, steps="auto", pos=False for both. Per
repeat the loop of explain() and explain_ranking take turns (which goes first alternates), so load
changes on a shared machine hit both alike. Reported: process-CPU seconds of each (median over
repeats), their ratio (target <= 0.6), the largest difference between the matrices (target: within
1e-6), and the compute time of rank_scores for the same candidates (target < 1 s).
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

from stsb import STSB_TEST  # noqa: E402
from timing import wall_and_cpu  # noqa: E402

from attribution import explain, explain_ranking, load_model, rank_scores  # noqa: E402
from attribution.workflows.data import read_pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append the table to this markdown file")
    parser.add_argument("--data", default=str(STSB_TEST), help=f"the STS-B test CSV (default {STSB_TEST})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.data).is_file():
        raise SystemExit(f"STS Benchmark test split not found at {args.data}: pass --data PATH")
    every = read_pairs(Path(args.data)).pairs
    step = max(1, len(every) // (args.candidates + 1))
    pairs = [(p.text_a, p.text_b) for p in every[::step][: args.candidates + 1]]  # as benchmarks/stsb.py samples
    query = pairs[0][0]
    candidates = list(dict.fromkeys(b for _, b in pairs[1:]))[: args.candidates]
    model = load_model(args.model)
    options = {"steps": "auto", "pos": False, "role_a": "query", "role_b": "document"}
    explain(model, query, candidates[0], **options)  # warm-up (first calls build caches)
    rank_scores(model, query, candidates)

    loop_cpu, rank_cpu, loop_wall, rank_wall, diffs = [], [], [], [], []
    for repeat in range(args.repeats):

        def loop() -> list:  # type: ignore[type-arg]
            return [explain(model, query, c, **options) for c in candidates]

        def ranked():  # type: ignore[no-untyped-def]
            return explain_ranking(model, query, candidates, pos=False)

        order = [("loop", loop), ("rank", ranked)]
        results = {}
        for name, fn in order if repeat % 2 == 0 else order[::-1]:
            wall, cpu, out = wall_and_cpu(fn)
            results[name] = out
            (loop_wall if name == "loop" else rank_wall).append(wall)
            (loop_cpu if name == "loop" else rank_cpu).append(cpu)
        ranking = results["rank"]
        singles = results["loop"]
        diffs.append(
            max(
                float(np.abs(ranking.by_index(k).attribution.matrix - singles[k].matrix).max())
                for k in range(len(candidates))
            )
        )
    scores_wall, scores_cpu = [], []
    for _ in range(max(5, args.repeats)):
        wall, cpu, _ = wall_and_cpu(lambda: rank_scores(model, query, candidates))
        scores_wall.append(wall)
        scores_cpu.append(cpu)

    ratio = statistics.median(rank_cpu) / statistics.median(loop_cpu)
    lines = [
        f"## bench_rank: {len(candidates)} STS-B candidates, {args.model}, default layer, steps=auto",
        "",
        f"torch threads {args.threads}, repeats {args.repeats}, load average before/after: "
        f"{LOAD_BEFORE} / {os.getloadavg()[0]:.2f} (shared machine)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| {len(candidates)} x explain(): CPU s (median) | {statistics.median(loop_cpu):.3f} |",
        f"| explain_ranking: CPU s (median) | {statistics.median(rank_cpu):.3f} |",
        f"| CPU ratio ranking / loop (target <= 0.6) | {ratio:.3f} |",
        f"| wall s loop / ranking (median) | {statistics.median(loop_wall):.3f} / {statistics.median(rank_wall):.3f} |",
        f"| largest matrix difference (target <= 1e-6) | {max(diffs):.2e} |",
        f"| rank_scores: wall s (median of {len(scores_wall)}) (target < 1 s) | {statistics.median(scores_wall):.4f} |",
        f"| rank_scores: CPU s (median) | {statistics.median(scores_cpu):.4f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


LOAD_BEFORE = f"{os.getloadavg()[0]:.2f}"

if __name__ == "__main__":
    main()
