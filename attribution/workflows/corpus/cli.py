"""`pairlens analyze`: the corpus analysis on the command line (argparse)."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import torch

from ...core.options import add_explain_options, options_from_args
from ...errors import InputError
from ...settings import DEFAULT_MODEL
from ..data import PairFile, read_pairs
from .analysis import RunReport, analyze
from .backend import check_threads
from .ray_backend import DEFAULT_BATCH_SIZE, RayOptions
from .settings import CONVERGENCE_STEPS
from .store import PAIRS, REPORT, SUMMARY


def _steps_list(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 1,2,4,8, not {value!r}"
        ) from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one number of steps")
    return out


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `analyze` on an argparse subparsers object; `run(args)` executes it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "analyze",
        help="attribute every pair of a file, resumably, and summarize the corpus",
        description="Attributions for every pair of a data file into --out (resumable), then summary.json and plots.",
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"built-in name, folder or hub id (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--data", required=True, help="pairs file: STS Benchmark, CSV/TSV with header, or JSONL")
    parser.add_argument("--out", required=True, help="result folder (created; re-run the same command to resume)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs of the file")
    add_explain_options(parser)
    parser.add_argument(
        "--convergence-pairs", type=int, default=10, help="pairs for the fixed-steps convergence pass (default 10)"
    )
    parser.add_argument(
        "--convergence-steps",
        type=_steps_list,
        default=list(CONVERGENCE_STEPS),
        help="N values of the convergence pass (default 1,2,4,8,16,32,64)",
    )
    parser.add_argument("--gold-scale", type=float, default=None, help="gold / scale ~ score (default 5 for STS-B)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: fastest on a shared machine)"
    )
    parser.add_argument("--no-png", action="store_true", help="skip PNG export (HTML report only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-cache", action="store_true", help="compute every pair even if the result cache has it")

    ray = parser.add_argument_group("Ray (optional extra: pip install 'pairlens[ray]')")
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="compute the pairs on Ray actors: a local Ray without ADDRESS, else join the cluster at ADDRESS "
        "(HOST:PORT, ray://HOST:PORT or auto)",
    )
    ray.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray actors, one loaded model each (default: local cores / --threads, or all the cluster holds)",
    )
    ray.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="GPUs per actor (0.5: two actors share a GPU; default 0: CPU actors)",
    )
    ray.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"pairs per batch sent to an actor, pairs of similar length together (default {DEFAULT_BATCH_SIZE})",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """CLI entry: 0 on success; InputError/PairLensError propagate (cli.main: exit 2, one line)."""
    threads = check_threads(args.threads)
    if args.gold_scale is not None and not (math.isfinite(args.gold_scale) and args.gold_scale > 0):
        raise InputError(f"--gold-scale must be a positive number (got {args.gold_scale}).")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1 (got {args.limit}).")
    options = options_from_args(args)
    ray = ray_options(args)
    pair_file = read_pairs(args.data, limit=args.limit)  # a bad file fails before the model loads
    if threads < args.threads and not args.ray:  # on a cluster (--ray ADDRESS) each worker caps at its node's cores
        cores = f"--threads {args.threads} is more than the {threads} CPU cores here"
        print(f"pairlens: warning: {cores}; using {threads}.", file=sys.stderr)
    if ray is None:
        torch.set_num_threads(threads)
    report = analyze(
        args.model,
        pair_file,
        args.out,
        options,
        limit=args.limit,
        convergence_pairs=args.convergence_pairs,
        convergence_steps=args.convergence_steps,
        gold_scale=args.gold_scale,
        png=not args.no_png,
        progress=not args.no_progress,
        cache=not args.no_cache,
        ray=ray,
    )
    print(report_text(report, pair_file))
    return 0


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The RayOptions of `--ray [ADDRESS] --workers --gpus-per-worker --batch-size` (None without --ray)."""
    ray_flags = {"--workers": args.workers, "--gpus-per-worker": args.gpus_per_worker, "--batch-size": args.batch_size}
    if args.ray is None:
        given = [flag for flag, value in ray_flags.items() if value is not None]
        if given:
            raise InputError(f"{given[0]} applies to Ray runs: add --ray (a local Ray) or --ray ADDRESS, or drop it.")
        return None
    return RayOptions.create(
        address=args.ray or None,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        batch_size=args.batch_size,
        threads=args.threads if args.ray else check_threads(args.threads),
    )


def report_text(report: RunReport, pair_file: PairFile) -> str:
    """A few readable lines: what was done and the headline numbers."""
    s = report.summary
    lines = [
        f"data        {pair_file.summary()}",
        f"pairs       {report.pairs} selected: {report.computed} computed, {report.skipped} already done, "
        f"{s.get('failed', 0)} refused" + (" (dropped a cut-short last line)" if report.dropped_tail else ""),
        f"time        {report.seconds:.1f} s attributions, {report.convergence_seconds:.1f} s convergence",
    ]
    top = s.get("top_k_share", {})
    if top.get("mean") and top["mean"][0] is not None:
        lines.append(
            f"top pairs   mean share of the sum: top-1 {top['mean'][0]:.2f}, top-5 {top['mean'][4]:.2f}, "
            f"top-10 {top['mean'][9]:.2f}"
        )
    corr = s.get("correlation") or {}
    if corr.get("gold") and corr.get("score_vs_gold"):
        sp = corr["score_vs_gold"].get("spearman")
        if sp is not None:
            lines.append(f"gold        Spearman(score, gold) {sp:.3f} over {corr['n']} pairs")
    ray = (s.get("run") or {}).get("ray")
    if ray:
        lines.append(
            f"ray         {ray['workers']} workers ({ray['where']}), ready in {ray['startup_seconds']:.1f} s, "
            f"{ray['worker_deaths']} worker deaths, {ray['resent_batches']} batches sent again"
        )
        if ray.get("note"):
            lines.append(f"note        {ray['note']}")
    plots = s.get("plots", {})
    lines.append(f"written     {report.out / SUMMARY}, {report.out / PAIRS}, {report.out / REPORT}")
    if plots.get("note"):
        lines.append(f"note        {plots['note']}")
    return "\n".join(lines)
