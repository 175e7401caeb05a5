"""Corpus benchmark: a fresh `analyze` run over STS-B test pairs, timed, with the paper's claims.

    python benchmarks/bench_corpus.py [--pairs 200] [--convergence-pairs 10] [--threads 1] [--out DIR]

Runs `python -m attribution analyze` in a child process on the first --pairs pairs of
../shared/data/stsbenchmark/sts-test.csv (all-MiniLM-L6-v2, steps=auto), then prints markdown:
wall time of the whole command, time of the attribution pass (target: <= 180 s for 200 pairs)
and of the convergence pass, the child's peak RSS, and the numbers behind each claim of
Moeller et al. (2023) read from summary.json. The result folder stays for the Corpus page
(default $PAIRLENS_HOME/runs/bench-stsb-test-<pairs>; it is removed first: a fresh run).

    python benchmarks/bench_corpus.py --ray [--pairs 200] [--workers 2] [--batch-size 8] [--rounds 2]
        [--convergence-pairs 0] [--layer L]

Serial against Ray (the `analyze --ray` of attribution/workflows/distributed.py) on the same
pairs: each round runs `analyze` (1 thread) and `analyze --ray --workers W` (1 thread each) in
child processes, in alternating order, into fresh folders; prints the wall time of the whole
command and of the attribution pass, Ray's start-up (ray.init until every actor has loaded the
model), the ratios Ray / serial (target: whole command <= 1.3x), the load average around each
command, and whether the two runs agree: largest |difference| of the matrices (target <= 1e-6)
and the summary numbers that differ.

    python benchmarks/bench_corpus.py --capacity [--pairs 40] [--layers 5,3]

Thread CPU time of explain() (steps=auto, POS tags) per pair at each layer, in this process, on
the first --pairs pairs: the cost of one pair on one CPU worker with a core of its own, the
basis of the README's capacity plan (wall time on this shared machine depends on its load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def load_average() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def analyze_command(args: argparse.Namespace, out: Path, ray: bool) -> list[str]:
    """The analyze command line; --no-cache: the serial run would otherwise read earlier runs' results
    from the persistent cache of PAIRLENS_HOME (Ray workers never use it)."""
    command = [
        sys.executable, "-m", "attribution", "analyze", "--model", args.model, "--data", str(STSB),
        "--limit", str(args.pairs), "--out", str(out), "--convergence-pairs", str(args.convergence_pairs),
        "--threads", "1", "--no-progress", "--no-png", "--no-cache",
    ]  # fmt: skip
    if args.layer is not None:
        command += ["--layer", str(args.layer)]
    if ray:
        command += ["--ray", "--workers", str(args.workers), "--batch-size", str(args.batch_size)]
    return command


def timed_run(command: list[str], out: Path) -> dict[str, Any]:
    """Run one analyze command into a fresh folder: wall time, load around it, its summary."""
    shutil.rmtree(out, ignore_errors=True)
    before = load_average()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"wall": wall, "summary": s, "load": f"{before} -> {load_average()}", "out": out}


def matrices(out: Path) -> dict[str, list[list[float]]]:
    found = {}
    with (out / "attributions.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            found[record["key"]] = record["result"]["matrix"] if "result" in record else None
    return found


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two summaries differ (floats by more than 1e-9 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def compare_ray(args: argparse.Namespace) -> int:
    """Serial and Ray runs of the same command, interleaved; markdown on stdout."""
    base = Path(args.out) if args.out else get_settings().home / "runs" / f"bench-ray-{args.pairs}"
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for round_ in range(args.rounds):
        order = ("serial", "ray") if round_ % 2 == 0 else ("ray", "serial")
        for kind in order:
            out = base / kind
            result = timed_run(analyze_command(args, out, kind == "ray"), out)
            rows.append((round_ + 1, kind, result))
            print(f"round {round_ + 1} {kind}: {result['wall']:.1f} s (load {result['load']})", file=sys.stderr)
    serial = [r for _, k, r in rows if k == "serial"]
    spread = [r for _, k, r in rows if k == "ray"]
    layer = spread[0]["summary"]["run"]["layer"]
    print(
        f"## Serial vs Ray: {args.pairs} STS-B test pairs, {args.model}, layer {layer}, steps=auto, "
        f"{args.workers} local Ray workers x 1 thread vs 1 process x 1 thread, batch size {args.batch_size}, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        "| round | run | whole command (s) | attribution pass (s) | pairs/s | Ray start-up (s) "
        "| load average before -> after |"
    )
    print("|---|---|---|---|---|---|---|")
    for round_, kind, r in rows:
        run = r["summary"]["run"]
        attribution = run["attribution_seconds_this_call"]
        startup = run["ray"]["startup_seconds"] if "ray" in run else None
        print(
            f"| {round_} | {kind} | {r['wall']:.1f} | {attribution:.1f} | {args.pairs / attribution:.2f} "
            f"| {fmt(startup, '.1f')} | {r['load']} |"
        )

    def median(runs: list[dict[str, Any]], key: str) -> float:
        values = [r["wall"] if key == "wall" else r["summary"]["run"][key] for r in runs]
        return statistics.median(values)

    wall_ratio = median(spread, "wall") / median(serial, "wall")
    pass_ratio = median(spread, "attribution_seconds_this_call") / median(serial, "attribution_seconds_this_call")
    startups = [r["summary"]["run"]["ray"]["startup_seconds"] for r in spread]
    print(
        f"\nmedians: whole command serial {median(serial, 'wall'):.1f} s, Ray {median(spread, 'wall'):.1f} s: "
        f"ratio **{wall_ratio:.2f}** (target <= 1.3: **{'met' if wall_ratio <= 1.3 else 'missed'}**); attribution "
        f"pass ratio {pass_ratio:.2f}; Ray start-up {statistics.median(startups):.1f} s "
        f"(from {min(startups):.1f} to {max(startups):.1f})"
    )
    a, b = matrices(serial[-1]["out"]), matrices(spread[-1]["out"])
    worst = 0.0
    for key, m in a.items():
        other = b[key]
        if m is None or other is None:
            assert m is other, key
            continue
        worst = max(
            worst, max(abs(x - y) for row, row2 in zip(m, other, strict=True) for x, y in zip(row, row2, strict=True))
        )
    assert a.keys() == b.keys(), "the runs hold different pairs"

    def comparable(s: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in s.items() if k not in ("run", "plots", "seconds_per_pair")}

    diffs = differences(comparable(serial[-1]["summary"]), comparable(spread[-1]["summary"]))
    print(
        f"same results (last round): {len(a)} pairs in both, largest |matrix difference| {worst:.1e} "
        f"(target <= 1e-6: **{'met' if worst <= 1e-6 else 'missed'}**); summary numbers that differ "
        f"(beyond 1e-9 relative; timings left out): {len(diffs)}" + (f" ({'; '.join(diffs[:5])})" if diffs else "")
    )
    print(f"\nresult folders: {base}/serial, {base}/ray")
    return 0


def capacity(args: argparse.Namespace) -> int:
    """Thread CPU seconds of explain() per pair at each layer, in this process (one torch thread)."""
    import torch

    from attribution import load_model
    from attribution.core import engine
    from attribution.workflows.data import read_pairs

    torch.set_num_threads(1)
    model = load_model(args.model)
    pairs = read_pairs(STSB, limit=args.pairs).pairs
    layers = [int(v) for v in args.layers.split(",")]
    engine.explain(model, pairs[0].text_a, pairs[0].text_b, layer=layers[0], pos=True)  # warm-up: spaCy, kernels
    print(
        f"## Cost per pair on one CPU worker: {len(pairs)} STS-B test pairs, {args.model}, steps=auto, 1 thread, "
        f"POS tags (load average {load_average()})\n"
    )
    print("| layer | CPU s per pair (mean) | median | p90 | median N | pairs/s per worker with its own core |")
    print("|---|---|---|---|---|---|")
    for layer in layers:
        costs, steps = [], []
        for pair in pairs:
            started = time.thread_time()
            result = engine.explain(model, pair.text_a, pair.text_b, layer=layer, pos=True)
            costs.append(time.thread_time() - started)
            steps.append(result.steps)
        costs.sort()
        mean = statistics.fmean(costs)
        print(
            f"| {layer} | {mean:.3f} | {statistics.median(costs):.3f} | {costs[int(0.9 * (len(costs) - 1))]:.3f} "
            f"| {statistics.median(steps):.0f} | {1 / mean:.2f} |"
        )
    # The driver of a Ray run appends every record (json.dumps, write, fsync): its ceiling in records/s.
    from attribution.workflows import corpus

    record = corpus.pair_record(pairs[0], corpus.pair_key(pairs[0]), result)
    size = len(json.dumps(record, ensure_ascii=False)) + 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.jsonl"
        started = time.perf_counter()
        for _ in range(args.appends):
            corpus.append_line(path, record)
        seconds = time.perf_counter() - started
    print(
        f"\ndriver: {args.appends} appends of a {size / 1024:.1f} KiB record (json.dumps, write, fsync) took "
        f"{seconds:.2f} s: {args.appends / seconds:.0f} records/s, {args.appends * size / seconds / 2**20:.1f} MiB/s"
    )
    print(f"\n(load average after: {load_average()})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=None, help="pairs (default 200; 40 with --capacity)")
    parser.add_argument("--convergence-pairs", type=int, default=None, help="default 10; 0 with --ray")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--out", default=None, help="result folder (default $PAIRLENS_HOME/runs/bench-stsb-test-N)")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--ray", action="store_true", help="serial against analyze --ray, interleaved")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--capacity", action="store_true", help="thread CPU time per pair at --layers")
    parser.add_argument("--layers", default="5,3")
    parser.add_argument("--appends", type=int, default=500, help="records appended to time the driver (--capacity)")
    args = parser.parse_args()
    if not STSB.is_file():
        print(f"STS Benchmark not found at {STSB}", file=sys.stderr)
        return 1
    if args.capacity:
        args.pairs = args.pairs or 40
        return capacity(args)
    args.pairs = args.pairs or 200
    if args.ray:
        args.convergence_pairs = 0 if args.convergence_pairs is None else args.convergence_pairs
        return compare_ray(args)
    args.convergence_pairs = 10 if args.convergence_pairs is None else args.convergence_pairs
    out = Path(args.out) if args.out else get_settings().home / "runs" / f"bench-stsb-test-{args.pairs}"
    shutil.rmtree(out, ignore_errors=True)
    # --no-cache: a fresh run computes every pair (none read from the persistent cache of PAIRLENS_HOME)
    command = [
        sys.executable, "-m", "attribution", "analyze", "--model", args.model, "--data", str(STSB),
        "--limit", str(args.pairs), "--out", str(out), "--convergence-pairs", str(args.convergence_pairs),
        "--threads", str(args.threads), "--no-progress", "--no-cache", *(["--no-png"] if args.no_png else []),
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
