"""Corpus benchmark: a fresh `analyze` run over STS-B test pairs, timed, with the paper's claims.

    python benchmarks/bench_corpus.py [--pairs 200] [--convergence-pairs 10] [--threads 1] [--out DIR]

Runs `python -m attribution analyze` in a child process on the first --pairs pairs of
../shared/data/stsbenchmark/sts-test.csv (all-MiniLM-L6-v2, steps=auto), then prints markdown:
wall time of the whole command, time of the attribution pass (target: <= 180 s for 200 pairs)
and of the convergence pass, the child's peak RSS, and the numbers behind each claim of
Moeller et al. (2023) read from summary.json. The result folder stays for the Corpus page
(default $PAIRLENS_HOME/runs/bench-stsb-test-<pairs>; it is removed first: a fresh run).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attribution.settings import get_settings  # noqa: E402

STSB = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-test.csv"
TARGET_SECONDS = 180.0


def fmt(value: Any, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def claims(s: dict[str, Any]) -> list[str]:
    """Markdown lines: the measured numbers behind each claim."""
    out = []
    top = s["top_k_share"]
    out.append("\n### 1. A few token pairs carry much of the score\n")
    out.append("| k | mean share | q1 | median | q3 |\n|---|---|---|---|---|")
    for k in (1, 2, 3, 5, 10, 20):
        i = k - 1
        cells = " | ".join(fmt(top[key][i]) for key in ("mean", "q1", "median", "q3"))
        out.append(f"| {k} | {cells} |")
    cov = s["coverage"]
    out.append(
        "\n| level | token pairs (median count) | share of cells (median, IQR) | tokens touched (median) "
        "| non-special tokens touched (median) | as many random cells (median) | pairs never reaching it |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for i, level in enumerate(cov["levels"]):
        out.append(
            f"| {level:.0%} | {fmt(cov['cells']['median'][i], '.1f')} | {fmt(cov['cells_fraction']['median'][i])} "
            f"({fmt(cov['cells_fraction']['q1'][i])}-{fmt(cov['cells_fraction']['q3'][i])}) "
            f"| {fmt(cov['tokens_share']['median'][i])} | {fmt(cov['content_tokens_share']['median'][i])} "
            f"| {fmt(cov['random_tokens_share']['median'][i])} | {cov['unreached'][i]} |"
        )
    out.append(f"\nmedian cells per pair: {fmt(s['cells']['median'], '.0f')}")
    pos = s["pos"]
    out.append("\n### 2. Nouns and verbs get the most weight (above their token share)\n")
    out.append("| UPOS | share of attribution | share of tokens | lift |\n|---|---|---|---|")
    order = sorted(range(len(pos["labels"])), key=lambda i: -(pos["attribution_share"][i] or 0.0))
    for i in order:
        out.append(
            f"| {pos['labels'][i]} | {fmt(pos['attribution_share'][i])} | {fmt(pos['token_share'][i])} "
            f"| {fmt(pos['lift'][i], '.2f')} |"
        )
    labels_a, labels_b = pos["matrix"]["labels_a"], pos["matrix"]["labels_b"]
    cells = [
        (pos["matrix"]["share"][i][j], a, b)
        for i, a in enumerate(labels_a)
        for j, b in enumerate(labels_b)
        if pos["matrix"]["share"][i][j] is not None
    ]
    cells.sort(reverse=True)
    out.append("\nstrongest POS x POS cells: " + ", ".join(f"{a}x{b} {v:.3f}" for v, a, b in cells[:6]))
    acc = s.get("accuracy")
    out.append("\n### 3. Accurate predictions still use most tokens\n")
    if acc:
        out.append(
            f"prediction error |score - gold/{acc['gold_scale']:g}|: median {fmt(acc['prediction_error']['median'])}\n"
        )
        out.append(
            "| quarter | pairs | median error | tokens touched for 80 % | for 90 % | non-special for 90 % "
            "| random cells for 90 % | share of cells for 90 % | top-1 share |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for name in ("most_accurate", "least_accurate"):
            g = acc[name]
            out.append(
                f"| {name.replace('_', ' ')} | {g['pairs']} | {fmt(g['prediction_error']['median'])} "
                f"| {fmt(g['tokens_share']['median'][1])} | {fmt(g['tokens_share']['median'][2])} "
                f"| {fmt(g['content_tokens_share']['median'][2])} | {fmt(g['random_tokens_share']['median'][2])} "
                f"| {fmt(g['cells_fraction']['median'][2])} "
                f"| {fmt(g['top1_share']['median'])} |"
            )
    corr = s["correlation"]
    if corr.get("gold"):
        out.append(
            f"\nSpearman/Pearson with gold over {corr['n']} pairs: score {fmt(corr['score_vs_gold']['spearman'])}"
            f"/{fmt(corr['score_vs_gold']['pearson'])}, attribution sum {fmt(corr['sum_vs_gold']['spearman'])}"
            f"/{fmt(corr['sum_vs_gold']['pearson'])}"
        )
    conv = s["convergence"]
    out.append(f"\n### 4. Deeper layers need fewer integration steps ({conv['pairs']} pairs)\n")
    steps = conv["steps"]
    out.append("| layer | rule | " + " | ".join(f"N={n}" for n in steps) + " | N for median <= 1e-3 |")
    out.append("|---|---|" + "---|" * len(steps) + "---|")
    for c in conv["curves"]:
        out.append(
            f"| {c['layer']} | {c['rule']} | "
            + " | ".join(fmt(m, ".1e") for m in c["median"])
            + f" | {c['steps_to_1e-3'] or '> ' + str(steps[-1])} |"
        )
    st = s["steps"]
    err = s["relative_error"]
    out.append(
        f"\nsteps=auto at layer {s['run']['layer']}: median N {fmt(st['median'], '.0f')}, counts {st['counts']}, "
        f"not converged {s['not_converged']}; relative error median {fmt(err['median'], '.1e')}, "
        f"max {fmt(err['max'], '.1e')}"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--convergence-pairs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--out", default=None, help="result folder (default $PAIRLENS_HOME/runs/bench-stsb-test-N)")
    parser.add_argument("--no-png", action="store_true")
    args = parser.parse_args()
    if not STSB.is_file():
        print(f"STS Benchmark not found at {STSB}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else get_settings().home / "runs" / f"bench-stsb-test-{args.pairs}"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "attribution", "analyze", "--model", args.model, "--data", str(STSB),
        "--limit", str(args.pairs), "--out", str(out), "--convergence-pairs", str(args.convergence_pairs),
        "--threads", str(args.threads), "--no-progress", *(["--no-png"] if args.no_png else []),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    run = s["run"]
    attribution = run["attribution_seconds_this_call"]
    print(f"## Corpus benchmark: {args.pairs} STS-B test pairs, {args.model}, steps=auto, {args.threads} thread(s)\n")
    print("| part | seconds |\n|---|---|")
    print(f"| attribution pass ({s['pairs']} pairs, POS included) | {attribution:.1f} |")
    print(
        f"| per pair (mean / median engine time) | {attribution / max(s['pairs'], 1):.2f} / "
        f"{fmt(s['seconds_per_pair']['median'], '.2f')} |"
    )
    print(
        f"| convergence pass ({s['convergence']['pairs']} pairs x 3 layers x 3 rules x N in "
        f"{s['convergence']['steps']}) | {run['convergence_seconds_this_call']:.1f} |"
    )
    print(f"| whole command (imports, model load, both passes, summary, plots) | {wall:.1f} |")
    verdict = "met" if attribution <= TARGET_SECONDS else "missed"
    print(f"\ntarget <= {TARGET_SECONDS:.0f} s for the attribution pass: **{verdict}**")
    print(f"child peak RSS {peak_gib:.2f} GiB")
    print(
        f"plots: {s['plots']['html']}, PNG {len(s['plots']['png'])} files"
        + (f" ({s['plots']['note']})" if s["plots"].get("note") else "")
    )
    print("\n".join(claims(s)))
    print(f"\nresult folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
