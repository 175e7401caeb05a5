"""Faithfulness checks: what a perturbation sweep costs, and whether the map's deletion order beats random.

    python benchmarks/bench_faithfulness.py sweep [--repeats 5] [--threads 2]
    python benchmarks/bench_faithfulness.py stsb [--pairs 200] [--budget-s 900] [--draws 5] [--threads 1]
                                                 [--layer L] [--stsb sts-test.csv]
                                                 [--rows benchmarks/faithfulness_logs/stsb.tsv]

sweep: a 20+20-token pair (20 tokens of each text besides [CLS]/[SEP]) with MiniLM at its default layer;
the sweep's compute (every single-token mask of both texts, the unedited pair included; explain() not
counted), batched (one forward pass per sequence length, chunk 64) against one edit per forward pass
(chunk 1), medians of --repeats runs on a fresh scorer each (no embedding reused between runs).

stsb: sts-test pairs (benchmarks/stsb.py's sample), MiniLM at the default layer (steps auto), both methods,
token order, mask. Per pair: the deletion and insertion areas of integrated Jacobians (IJ), Hessian x input
(HxI) and random order (mean of --draws seeded draws), and each map's Spearman rho with the sweep. Printed:
means and medians, and how often each order deletes score faster than random (smaller deletion area).
Pairs are done until --pairs or until --budget-s seconds have passed (the count is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stsb  # noqa: E402

from attribution import explain, load_model  # noqa: E402
from attribution.faithfulness import faithfulness_report  # noqa: E402
from attribution.faithfulness.sweep import sweep_prepared  # noqa: E402
from attribution.faithfulness.units import prepare  # noqa: E402

SENTENCE = (
    "the quick brown fox jumps over a lazy dog while seven small children watch from the old wooden bridge near "
    "river bank today and tomorrow again"
)
WORDS = SENTENCE.split(" ")


def text_of(model, n_tokens: int, offset: int) -> str:  # type: ignore[no-untyped-def]
    """A text that MiniLM cuts into exactly n_tokens tokens besides [CLS] and [SEP]."""
    words: list[str] = []
    k = offset
    while len(model.tokenizer(" ".join(words))["input_ids"]) - 2 < n_tokens:
        words.append(WORDS[k % len(WORDS)])
        k += 1
    text = " ".join(words)
    assert len(model.tokenizer(text)["input_ids"]) - 2 == n_tokens, text
    return text


def bench_sweep(args: argparse.Namespace) -> None:
    model = load_model("all-MiniLM-L6-v2")
    a, b = text_of(model, 20, 0), text_of(model, 20, 7)
    res = explain(model, a, b, pos=False)
    print(f"pair: {len(res.a.tokens)} + {len(res.b.tokens)} tokens (20 + 20 besides specials), layer {res.layer}")
    sweep_prepared(prepare(model, res))  # warm-up
    wall: dict[int, list[float]] = {64: [], 1: []}
    cpu: dict[int, list[float]] = {64: [], 1: []}
    forwards: dict[int, int] = {}
    for _ in range(args.repeats):
        for chunk in (64, 1):
            pair = prepare(model, res, chunk=chunk)
            w0, c0 = time.perf_counter(), time.process_time()
            sweep = sweep_prepared(pair)
            wall[chunk].append(time.perf_counter() - w0)
            cpu[chunk].append(time.process_time() - c0)
            forwards[chunk] = sweep.forwards
    print(f"edits: {len(sweep.items)} single-token masks + the unedited pair, torch threads {torch.get_num_threads()}")
    for chunk, name in ((64, "batched (chunk 64)"), (1, "one edit per pass (chunk 1)")):
        print(
            f"{name}: {forwards[chunk]} forward passes, median wall {statistics.median(wall[chunk]):.3f} s, "
            f"median process CPU {statistics.median(cpu[chunk]):.3f} s over {args.repeats} runs"
        )
    ratio_wall = statistics.median(wall[1]) / statistics.median(wall[64])
    ratio_cpu = statistics.median(cpu[1]) / statistics.median(cpu[64])
    load = os.getloadavg()[0]
    print(f"ratio one-per-pass / batched: wall {ratio_wall:.2f}, CPU {ratio_cpu:.2f}; load average {load:.2f}")


def bench_stsb(args: argparse.Namespace) -> None:
    model = load_model("all-MiniLM-L6-v2")
    if args.stsb:
        stsb.STSB_TEST = Path(args.stsb)
    pairs = stsb.sample_pairs(args.pairs)
    started = time.perf_counter()
    rows = []
    out = Path(args.rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = (
        "pair", "tokens", "ij_del", "hxi_del", "rand_del", "ij_ins", "hxi_ins", "rand_ins", "rho_ij", "rho_hxi",
        "rho_target_ij", "rho_target_hxi", "seconds",
    )  # fmt: skip
    with out.open("w") as log:
        log.write("\t".join(columns) + "\n")
        for k, (a, b) in enumerate(pairs):
            if time.perf_counter() - started > args.budget_s:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = faithfulness_report(model, a, b, layer=args.layer, draws=args.draws, seed=k)
            c = report.curves
            s_ij, s_hxi = report.sweeps["integrated-jacobians"], report.sweeps["hessian-x-input"]
            row = (
                k, len(s_ij.items),
                c.curve("integrated-jacobians", "deletion").area, c.curve("hessian-x-input", "deletion").area,
                c.curve("random", "deletion").area, c.curve("integrated-jacobians", "insertion").area,
                c.curve("hessian-x-input", "insertion").area, c.curve("random", "insertion").area,
                s_ij.spearman, s_hxi.spearman, s_ij.spearman_target, s_hxi.spearman_target, report.seconds,
            )  # fmt: skip
            rows.append(row)
            log.write("\t".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n")
            log.flush()
    elapsed = time.perf_counter() - started
    data = np.array([r[1:] for r in rows], dtype=np.float64)
    n = len(rows)
    layer = args.layer if args.layer is not None else model.default_layer
    print(f"{n} of {args.pairs} STS-B test pairs in {elapsed:.0f} s (budget {args.budget_s} s), MiniLM layer {layer}")
    print(f"random order: mean of {args.draws} seeded draws per pair; op mask (pad token); token order")

    def col(name: str) -> np.ndarray:
        return data[:, columns.index(name) - 1]

    for name in ("ij_del", "hxi_del", "rand_del", "ij_ins", "hxi_ins", "rand_ins"):
        print(f"  area {name:<9} mean {col(name).mean():.4f}  median {np.median(col(name)):.4f}")
    for name in ("rho_ij", "rho_hxi", "rho_target_ij", "rho_target_hxi"):
        values = col(name)[np.isfinite(col(name))]
        print(f"  {name:<15} mean {values.mean():+.3f}  median {np.median(values):+.3f}  (n={len(values)})")
    wins = {
        "IJ deletes faster than random (ij_del < rand_del)": col("ij_del") < col("rand_del"),
        "HxI deletes faster than random (hxi_del < rand_del)": col("hxi_del") < col("rand_del"),
        "IJ deletes faster than HxI (ij_del < hxi_del)": col("ij_del") < col("hxi_del"),
        "IJ inserts faster than random (ij_ins > rand_ins)": col("ij_ins") > col("rand_ins"),
        "HxI inserts faster than random (hxi_ins > rand_ins)": col("hxi_ins") > col("rand_ins"),
    }
    for label, hits in wins.items():
        print(f"  {label}: {int(hits.sum())}/{n} pairs ({100 * hits.mean():.0f} %)")
    gap = col("rand_del") - col("ij_del")
    print(f"  deletion area between random and IJ: mean {gap.mean():+.4f}, median {np.median(gap):+.4f}")
    gap = col("rand_del") - col("hxi_del")
    print(f"  deletion area between random and HxI: mean {gap.mean():+.4f}, median {np.median(gap):+.4f}")
    print(f"  seconds per pair (explain x2, sweeps, curves): median {np.median(col('seconds')):.2f}")
    print(f"rows: {out}; load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("sweep")
    sw.add_argument("--repeats", type=int, default=5)
    sw.add_argument("--threads", type=int, default=2)
    sw.set_defaults(func=bench_sweep)
    st = sub.add_parser("stsb")
    st.add_argument("--pairs", type=int, default=200)
    st.add_argument("--budget-s", type=float, default=900.0)
    st.add_argument("--draws", type=int, default=5)
    st.add_argument("--layer", type=int, default=None)
    st.add_argument("--threads", type=int, default=1)
    st.add_argument("--stsb", default=None, help="sts-test.csv (default: benchmarks/stsb.py's path)")
    st.add_argument("--rows", default=str(ROOT / "benchmarks" / "faithfulness_logs" / "stsb.tsv"))
    st.set_defaults(func=bench_stsb)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
