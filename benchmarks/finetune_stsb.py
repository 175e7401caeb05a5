"""Exact vs plain fine-tuning of all-MiniLM-L6-v2 on the STS Benchmark (issue 5).

    python benchmarks/finetune_stsb.py [--work /tmp/pairlens-finetune-bench] [--samples 20]

1. Off-the-shelf model on sts-test: Spearman x 100 of f (approximate) and of the shifted f - f(r).
2. One epoch on sts-train, exact (shifted) and --plain, identical settings; each on sts-test.
3. For the exact model, ~20 sts-test pairs explained at steps=auto: max |reference_terms| and
   max |integration_error| / |score|.

Models are saved under --work (not the repo); a finished model there is reused, so an
interrupted benchmark can be run again. Takes 10-25 min on 2 CPU cores. Prints a table and
writes results.json into --work.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attribution import explain, load_model  # noqa: E402
from attribution.workflows.data import read_pairs  # noqa: E402
from attribution.workflows.evaluate import evaluate  # noqa: E402
from attribution.workflows.finetune import finetune  # noqa: E402

STSB = REPO.parent / "shared" / "data" / "stsbenchmark"
BASE = "all-MiniLM-L6-v2"


def _train(kind: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = work / f"minilm-{kind}"
    if (out / "pairlens.json").is_file():
        print(f"reusing {out}", file=sys.stderr)
    else:
        finetune(
            BASE,
            STSB / "sts-train.csv",
            out,
            dev=STSB / "sts-dev.csv",
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            plain=kind == "plain",
            seed=args.seed,
            progress=True,
            overwrite=True,
        )
    marker: dict[str, Any] = json.loads((out / "pairlens.json").read_text())
    marker["path"] = str(out)
    return marker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--work", default="/tmp/pairlens-finetune-bench", help="where models and results go")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples", type=int, default=20, help="sts-test pairs explained with the exact model")
    args = parser.parse_args()
    if not STSB.is_dir():
        print(f"STS Benchmark not found at {STSB}", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    test = read_pairs(STSB / "sts-test.csv")
    rows: list[tuple[str, str, float, float | None, float | None]] = []  # label, mode, spearman, dev, epoch s

    base = load_model(BASE)
    for mode in ("approximate", "exact"):
        report = evaluate(base, test, mode=mode)
        rows.append((f"{BASE} off the shelf", mode, report.spearman, None, None))
        print(f"base {mode}: {report.spearman:.2f} ({report.seconds:.0f} s)", file=sys.stderr)

    trained: dict[str, dict[str, Any]] = {}
    for kind in ("exact", "plain"):
        marker = _train(kind, work, args)
        trained[kind] = marker
        model = load_model(marker["path"])
        for mode in ("exact", "approximate") if kind == "exact" else ("approximate", "exact"):
            report = evaluate(model, test, mode=mode)
            dev = marker["metrics"]["dev_spearman"][-1] if mode == model.default_mode else None
            seconds = marker["training"]["epoch_seconds"][-1] if mode == model.default_mode else None
            rows.append((f"1 epoch, {kind}", mode, report.spearman, dev, seconds))
            print(f"{kind} {mode}: {report.spearman:.2f}", file=sys.stderr)

    exact = load_model(trained["exact"]["path"])
    sample = random.Random(args.seed).sample(test.pairs, args.samples)
    checks: list[dict[str, Any]] = []
    for pair in sample:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = explain(exact, pair.a.text, pair.b.text, pos=False)
        checks.append(
            {
                "row": pair.row,
                "score": res.score,
                "reference_terms": res.reference_terms,
                "relative_error": abs(res.integration_error) / abs(res.score) if res.score else None,
                "steps": res.steps,
                "seconds": res.seconds,
                "converged": res.converged,
            }
        )
    max_ref = max(abs(c["reference_terms"]) for c in checks)
    max_rel = max(c["relative_error"] for c in checks if c["relative_error"] is not None)

    print()
    print(f"{'model':<32} {'mode':<12} {'sts-test':>9} {'sts-dev':>8} {'epoch s':>8}")
    for label, mode, spearman, dev, seconds in rows:
        dev_text = f"{dev:.2f}" if dev is not None else "-"
        sec_text = f"{seconds:.0f}" if seconds is not None else "-"
        print(f"{label:<32} {mode:<12} {spearman:>9.2f} {dev_text:>8} {sec_text:>8}")
    steps = sorted(c["steps"] for c in checks)
    print()
    print(f"exact model, {len(checks)} sts-test pairs explained at steps=auto (tolerance 1e-3):")
    print(f"  max |reference_terms|              {max_ref:.2e}")
    print(f"  max |integration_error| / |score|  {max_rel:.2e}")
    print(f"  steps used                         {steps[0]}-{steps[-1]} (median {steps[len(steps) // 2]})")
    print(f"  converged                          {sum(c['converged'] for c in checks)}/{len(checks)}")
    print(f"  seconds per pair                   {sum(c['seconds'] for c in checks) / len(checks):.2f}")

    results = {
        "table": [
            {"model": label, "mode": mode, "sts_test": sp, "sts_dev": dev, "epoch_seconds": sec}
            for label, mode, sp, dev, sec in rows
        ],
        "trained": trained,
        "explain_checks": checks,
        "max_abs_reference_terms": max_ref,
        "max_relative_integration_error": max_rel,
        "settings": vars(args),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
